-- One step of an event's waiting room, by the admission loop (consumer/admission.py), which
-- holds the lease: at most `chunk` entries touched per call, so Redis is never held long.
-- 1. Opening: once opens_at has passed, the pre-queue is drawn into the line, each entry
--    placed at the first 52 bits of sha1(seed .. ':' .. queue id): one uniformly random
--    order that shared/queue.py `draw_order` reproduces from the seed and the pre-queue
--    (kept for that). Admission starts when the whole pre-queue is drawn.
-- 2. Entries not seen (polled) for `idle` ms expire, wherever they are: the ones behind
--    move up.
-- 3. Sold out: the waiting entries end SOLD_OUT. Paused (by an admin, or by the loop for
--    held stock or lag): nothing is admitted and no credit builds up.
-- 4. Otherwise entries are admitted from the head of the line at `rate` per second (a
--    fraction carried over between calls, at most one second's worth at once).
-- KEYS: meta, pre, line, seen, owner, done (shared/keys.py QueueKeys)
-- ARGV: [1] seed (taken at the opening only), [2] '1' to hold admission, [3] '1' when sold
-- out, [4] idle ms, [5] chunk, [6] the measured admission rate ('' when not known)
-- Returns {state, admitted, expired, sold_out, drawn, more, waiting}: more is 1 when a chunk
-- ran full (call again); waiting counts the entries still holding a place.
local meta, pre, line, seen, owner, done = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
if redis.call('EXISTS', meta) == 0 then
  return {'missing', 0, 0, 0, 0, 0, 0}
end
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local chunk, idle = tonumber(ARGV[5]), tonumber(ARGV[4])
local state = redis.call('HGET', meta, 'state')
local opens_at = tonumber(redis.call('HGET', meta, 'opens_at'))
local rate = tonumber(redis.call('HGET', meta, 'rate'))
-- Every check before the first write: a failing one leaves nothing half-written.
if not chunk or chunk < 1 or not idle or not opens_at or not rate then
  return redis.error_reply('queue_admit: bad chunk or idle, or no opens_at or rate')
end
local admitted, expired, sold_out, drawn, more = 0, 0, 0, 0, 0
redis.call('HSET', meta, 'measured', ARGV[6])

if state == 'pre' and now >= opens_at then
  state = 'drawing'
  redis.call('HSET', meta, 'state', state, 'seed', ARGV[1], 'opened_at', now, 'cursor', 0)
end
if state == 'drawing' then
  local seed = redis.call('HGET', meta, 'seed')
  local cursor = tonumber(redis.call('HGET', meta, 'cursor'))
  local ids = redis.call('ZRANGE', pre, cursor, cursor + chunk - 1)
  for _, qid in ipairs(ids) do
    if redis.call('HEXISTS', done, qid) == 0 then  -- expired before the opening: skipped
      local place = tonumber(string.sub(redis.sha1hex(seed .. ':' .. qid), 1, 13), 16)
      redis.call('ZADD', line, place, qid)
    end
  end
  drawn = #ids
  redis.call('HSET', meta, 'cursor', cursor + drawn)
  if drawn == chunk then
    return {state, 0, 0, 0, drawn, 1, redis.call('ZCARD', seen)}
  end
  state = 'open'
  redis.call('HSET', meta, 'state', state, 'tick_at', now, 'carry', 0)
end

local stale = redis.call('ZRANGEBYSCORE', seen, '-inf', now - idle, 'LIMIT', 0, chunk)
for _, qid in ipairs(stale) do
  redis.call('ZREM', line, qid)
  redis.call('ZREM', seen, qid)
  redis.call('HSET', done, qid, 'E')
end
expired = #stale
if expired > 0 then
  redis.call('HINCRBY', meta, 'expired', expired)
end
if expired == chunk then
  more = 1
end
if state ~= 'open' and state ~= 'sold_out' then
  return {state, 0, expired, 0, drawn, more, redis.call('ZCARD', seen)}
end

if state == 'sold_out' or ARGV[3] == '1' then
  if state ~= 'sold_out' then
    state = 'sold_out'
    redis.call('HSET', meta, 'state', state)
  end
  local popped = redis.call('ZPOPMIN', line, chunk)
  for i = 1, #popped, 2 do
    redis.call('ZREM', seen, popped[i])
    redis.call('HSET', done, popped[i], 'S')
  end
  sold_out = #popped / 2
  if sold_out > 0 then
    redis.call('HINCRBY', meta, 'sold_out', sold_out)
  end
  if sold_out == chunk then
    more = 1
  end
  return {state, 0, expired, sold_out, drawn, more, redis.call('ZCARD', seen)}
end

if redis.call('HGET', meta, 'paused') == '1' or ARGV[2] == '1' then
  redis.call('HSET', meta, 'tick_at', now, 'carry', 0)
  return {'paused', 0, expired, 0, drawn, more, redis.call('ZCARD', seen)}
end
local last = tonumber(redis.call('HGET', meta, 'tick_at') or now)
local budget = tonumber(redis.call('HGET', meta, 'carry') or 0) + (now - last) * rate / 1000
budget = math.min(budget, math.max(rate, 1))
local n = math.min(math.floor(budget), chunk)
if n > 0 then
  local popped = redis.call('ZPOPMIN', line, n)
  local first = redis.call('HINCRBY', meta, 'admitted', #popped / 2) - #popped / 2
  for i = 1, #popped, 2 do
    redis.call('ZREM', seen, popped[i])
    redis.call('HSET', done, popped[i], 'A:' .. now .. ':' .. (first + (i + 1) / 2))
  end
  admitted = #popped / 2
  if admitted < n then
    budget = 0  -- an empty line banks no credit for later joiners
  else
    budget = budget - admitted
  end
end
redis.call('HSET', meta, 'tick_at', now, 'carry', budget)
return {state, admitted, expired, 0, drawn, more, redis.call('ZCARD', seen)}
