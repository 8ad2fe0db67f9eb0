-- One buyer's entry in an event's waiting room: join it (ARGV[1] 'join', idempotent: the
-- entry id is derived from the buyer) or read it (ARGV[1] 'poll'). Either counts as a poll:
-- a waiting entry's last-seen time moves to now, so it keeps its place (queue_admit.lua
-- expires the ones not seen for a while).
-- KEYS: meta, pre, line, seen, owner, done (shared/keys.py QueueKeys)
-- ARGV: [1] 'join' or 'poll', [2] queue id, [3] buyer (join), [4] where later joiners'
-- places start (shared/queue.py ARRIVALS: 2^52, behind every drawn place)
-- Returns {found, buyer, ended, rank, state, measured}: found is 'missing' (no queue: its
-- data was lost), 'unknown' (no such entry), 'new' or 'old'; ended is the entry's `done`
-- value or 'W' (waiting); rank counts the waiting entries ahead (-1: not known before the
-- draw); measured is the admission rate the loop measured ('' when not known).
-- A join after the sell-out ends SOLD_OUT at once and counts in `sold_out`, so joined (seq)
-- = waiting + admitted + expired + sold_out.
local meta, pre, line, seen, owner, done = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
if redis.call('EXISTS', meta) == 0 then
  return {'missing'}
end
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local qid = ARGV[2]
local state = redis.call('HGET', meta, 'state')
local buyer = redis.call('HGET', owner, qid)
local found = 'old'
if not buyer then
  if ARGV[1] ~= 'join' then
    return {'unknown'}
  end
  -- Every check before the first write: a failing one leaves nothing half-written.
  local arrivals = tonumber(ARGV[4])
  local opens_at = tonumber(redis.call('HGET', meta, 'opens_at'))
  if not arrivals or not opens_at then
    return redis.error_reply('queue_entry: no arrivals base or no opens_at')
  end
  found, buyer = 'new', ARGV[3]
  redis.call('HSET', owner, qid, buyer)
  local seq = redis.call('HINCRBY', meta, 'seq', 1)
  if state == 'sold_out' then
    redis.call('HSET', done, qid, 'S')
    redis.call('HINCRBY', meta, 'sold_out', 1)
  else
    if state == 'pre' and now < opens_at then
      redis.call('ZADD', pre, seq, qid)  -- drawn at the opening
    else
      redis.call('ZADD', line, arrivals + seq, qid)  -- behind every drawn place, by arrival
    end
    redis.call('ZADD', seen, now, qid)
  end
end
local ended = redis.call('HGET', done, qid)
local rank = -1
if not ended then
  redis.call('ZADD', seen, 'XX', now, qid)
  if state == 'open' then
    rank = redis.call('ZRANK', line, qid) or -1
  end
end
return {found, buyer, ended or 'W', rank, state, redis.call('HGET', meta, 'measured') or ''}
