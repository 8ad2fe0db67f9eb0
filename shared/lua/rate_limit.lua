-- Rate limits (GCRA) for a batch of requests: one round trip for many concurrent requests.
-- Each key holds a limit's theoretical arrival time (epoch ms). A request passes when every
-- one of its limits has room, and only then does it use up any of them: a request refused
-- by its address limit costs its buyer nothing.
-- ARGV[1]: msgpack, one array per request: key, emission interval (ms per request), burst,
-- then the same for its next limit, and so on. (The keys travel in ARGV, not KEYS: the
-- batch spans buyers, so it cannot live in one Redis Cluster slot anyway.)
-- Returns only the refused requests, four integers each: the request's position (from 1),
-- retry after (ms), the burst of the limit that refused, ms until that limit is full again.
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local refused = {}
for position, checks in ipairs(cmsgpack.unpack(ARGV[1])) do
  local allowed, retry, limit, reset = true, 0, 0, 0
  local writes = {}
  for at = 1, #checks, 3 do
    local key, interval, burst = checks[at], checks[at + 1], checks[at + 2]
    local tat = tonumber(redis.call('GET', key) or now)
    if tat < now then
      tat = now
    end
    local ahead = tat + interval - now
    local window = burst * interval
    if ahead > window then
      if allowed or ahead - window > retry then
        retry, limit, reset = ahead - window, burst, ahead - interval
      end
      allowed = false
    else
      writes[#writes + 1] = {key, tat + interval, ahead}
    end
  end
  if allowed then
    for _, write in ipairs(writes) do
      redis.call('SET', write[1], string.format('%.3f', write[2]), 'PX', math.ceil(write[3]))
    end
  else
    refused[#refused + 1] = position
    refused[#refused + 1] = math.ceil(retry)
    refused[#refused + 1] = limit
    refused[#refused + 1] = math.ceil(reset)
  end
end
return refused
