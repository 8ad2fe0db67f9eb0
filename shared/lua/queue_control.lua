-- An event's waiting room: created with the event, or changed by an admin.
-- KEYS: meta (shared/keys.py QueueKeys)
-- ARGV: [1] 'create' (opens_at ms, rate), 'open' (opens now if not yet open), 'pause',
-- 'resume' or 'rate' (the new rate); [2] and [3]: its values
-- Returns 1 when done, 0 when 'create' found the queue there already, -1 when the queue is
-- missing (its data was lost).
local meta = KEYS[1]
local mode = ARGV[1]
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
if mode == 'create' then
  if redis.call('EXISTS', meta) == 1 then
    return 0
  end
  redis.call('HSET', meta, 'opens_at', ARGV[2], 'rate', ARGV[3], 'state', 'pre', 'seq', 0,
    'paused', 0, 'admitted', 0, 'expired', 0, 'sold_out', 0, 'created_at', now)
  return 1
end
if redis.call('EXISTS', meta) == 0 then
  return -1
end
if mode == 'open' then
  if redis.call('HGET', meta, 'state') == 'pre'
      and tonumber(redis.call('HGET', meta, 'opens_at')) > now then
    redis.call('HSET', meta, 'opens_at', now)
  end
elseif mode == 'pause' then
  redis.call('HSET', meta, 'paused', 1)
elseif mode == 'resume' then
  redis.call('HSET', meta, 'paused', 0, 'tick_at', now, 'carry', 0)
elseif mode == 'rate' then
  redis.call('HSET', meta, 'rate', ARGV[2])
end
return 1
