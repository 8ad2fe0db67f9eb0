-- wrk script for the benchmark: GET one path, with If-None-Match when an ETag is given (a
-- poller that already has the current version: 304, no body).
-- Usage: wrk -t1 -c64 -d10s -s scripts/bench/get.lua http://127.0.0.1:PORT -- PATH [ETAG]
-- Prints the same "BENCH_JSON {...}" line as post.lua (its done() is reused).

dofile((string.gsub(debug.getinfo(1, "S").source:sub(2), "get%.lua$", "report.lua")))

function init(args)
  statuses = {}
  wrk.method = "GET"
  wrk.path = args[1]
  if args[2] and args[2] ~= "" then
    wrk.headers["If-None-Match"] = args[2]
  end
end

function request()
  return wrk.format()
end
