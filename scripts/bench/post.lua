-- wrk script for the benchmark: POST /api/bookings with a distinct user per request, or,
-- given a file of buyers ("<user id> <token>" per line), each request as the next buyer
-- with its bearer token.
-- Usage: wrk -t1 -c64 -d10s -s scripts/bench/post.lua http://127.0.0.1:PORT -- EVENT_ID TAG
--        [BUYERS_FILE]
-- Prints one line "BENCH_JSON {...}" with requests, duration, latency percentiles (us) and
-- the count of every HTTP status seen, which scripts/bench.py parses.

local threads = {}

function setup(thread)
  thread:set("thread_no", #threads + 1)
  table.insert(threads, thread)
end

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

function response(status, headers, body)
  local key = tostring(status)
  statuses[key] = (statuses[key] or 0) + 1
end

function done(summary, latency, requests)
  local merged = {}
  for _, thread in ipairs(threads) do
    local seen = thread:get("statuses") or {}
    for code, count in pairs(seen) do
      merged[code] = (merged[code] or 0) + count
    end
  end
  local parts = {}
  for code, count in pairs(merged) do
    table.insert(parts, string.format('"%s":%d', code, count))
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,'
      .. '"max_us":%d,"mean_us":%.1f,"errors":{"connect":%d,"read":%d,"write":%d,'
      .. '"status":%d,"timeout":%d},"statuses":{%s}}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, latency.mean, e.connect, e.read, e.write, e.status,
    e.timeout, table.concat(parts, ",")))
end
