-- wrk script for the benchmark: POST /api/events/EVENT_ID/queue, each request a new buyer
-- joining the event's on-sale queue (201).
-- Usage: wrk -t1 -c64 -d10s -s scripts/bench/join.lua http://127.0.0.1:PORT -- EVENT_ID TAG
-- Prints the same "BENCH_JSON {...}" line as post.lua (its done() is reused).

dofile((string.gsub(debug.getinfo(1, "S").source:sub(2), "join%.lua$", "report.lua")))

function init(args)
  counter = 0
  statuses = {}
  tag = args[2] or "wrk"
  wrk.method = "POST"
  wrk.path = "/api/events/" .. (args[1] or "1") .. "/queue"
  wrk.headers["Content-Type"] = "application/json"
end

function request()
  counter = counter + 1
  return wrk.format(nil, nil, nil, string.format('{"user_id":"%s-%d-%d"}', tag, thread_no, counter))
end
