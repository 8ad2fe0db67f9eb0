-- Rate limits (GCRA) for a batch of requests, one round trip for many concurrent requests.
-- Each key holds a limit's theoretical arrival time (epoch ms). A request passes when every
-- one of its limits has room, and only then does it use up any of them: a request refused
-- by its address limit costs its buyer nothing.
-- KEYS: the distinct limit keys of the batch.
-- ARGV[1]: how many requests; then per request: its count of limits, then per limit:
--   the index of its key in KEYS, the emission interval (ms per request), the burst.
-- Returns per request five integers: allowed (1/0), retry after (ms), the limit (burst)
-- that decided, remaining requests of it, ms until it is full again.
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local out = {}
local at = 2
for _ = 1, tonumber(ARGV[1]) do
  local count = tonumber(ARGV[at])
  at = at + 1
  local allowed, retry, limit, remaining, reset = 1, 0, 0, -1, 0
  local writes = {}
  for _ = 1, count do
    local key = KEYS[tonumber(ARGV[at])]
    local interval = tonumber(ARGV[at + 1])
    local burst = tonumber(ARGV[at + 2])
    at = at + 3
    local tat = tonumber(redis.call('GET', key) or now)
    if tat < now then
      tat = now
    end
    local ahead = tat + interval - now
    local window = burst * interval
    if ahead > window then
      if allowed == 1 or ahead - window > retry then
        retry, limit, reset = ahead - window, burst, ahead - interval
      end
      allowed, remaining = 0, 0
    else
      writes[#writes + 1] = {key, tat + interval, ahead}
      local left = math.floor((window - ahead) / interval)
      if allowed == 1 and (remaining < 0 or left < remaining) then
        remaining, limit, reset = left, burst, ahead
      end
    end
  end
  if allowed == 1 then
    for _, write in ipairs(writes) do
      redis.call('SET', write[1], string.format('%.3f', write[2]), 'PX', math.ceil(write[3]))
    end
  end
  out[#out + 1] = allowed
  out[#out + 1] = math.ceil(retry)
  out[#out + 1] = limit
  out[#out + 1] = math.max(remaining, 0)
  out[#out + 1] = math.ceil(reset)
end
return out
