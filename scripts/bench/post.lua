-- wrk script for the benchmark: POST /api/bookings with a distinct user per request, or,
-- given a file of buyers ("<user id> <token>" per line), each request as the next buyer
-- with its bearer token.
-- Usage: wrk -t1 -c64 -d10s -s scripts/bench/post.lua http://127.0.0.1:PORT -- EVENT_ID TAG
--        [BUYERS_FILE]
-- Prints one line "BENCH_JSON {...}" (report.lua).

dofile((string.gsub(debug.getinfo(1, "S").source:sub(2), "post%.lua$", "report.lua")))

function init(args)
  event_id = tonumber(args[1]) or 1
  tag = args[2] or "wrk"
  counter = 0
  statuses = {}
  wrk.method = "POST"
  wrk.path = "/api/bookings"
  wrk.headers["Content-Type"] = "application/json"
  buyers = {}
  if args[3] then
    for line in io.lines(args[3]) do
      local user, token = line:match("^(%S+) (%S+)$")
      if user then
        buyers[#buyers + 1] = {user, "Bearer " .. token}
      end
    end
  end
  signed = {["Content-Type"] = "application/json"}
end

function request()
  counter = counter + 1
  if #buyers > 0 then
    local buyer = buyers[counter % #buyers + 1]
    signed["Authorization"] = buyer[2]
    local body = string.format('{"event_id":%d,"user_id":"%s","quantity":1}', event_id, buyer[1])
    return wrk.format(nil, nil, signed, body)
  end
  local body = string.format(
    '{"event_id":%d,"user_id":"%s-%d-%d","quantity":1}', event_id, tag, thread_no, counter)
  return wrk.format(nil, nil, nil, body)
end

