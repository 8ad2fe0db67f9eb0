-- One buyer's entry in an event's waiting room: join it (ARGV[1] 'join', idempotent: the
-- entry id is derived from the buyer) or read it (ARGV[1] 'poll'). Either counts as a poll:
-- a waiting entry's last-seen time moves to now, so it keeps its place (queue_admit.lua
-- expires the ones not seen for a while).
-- KEYS: meta, pre, line, seen, owner, done (shared/keys.py QueueKeys)
-- ARGV: [1] 'join' or 'poll', [2] queue id, [3] buyer (join)
-- Returns {found, buyer, ended, rank, state, measured}: found is 'missing' (no queue: its
-- data was lost), 'unknown' (no such entry), 'new' or 'old'; ended is the entry's `done`
-- value or 'W' (waiting); rank counts the waiting entries ahead (-1: not known before the
-- draw); measured is the admission rate the loop measured ('' when not known).
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
  found, buyer = 'new', ARGV[3]
  redis.call('HSET', owner, qid, buyer)
  local seq = redis.call('HINCRBY', meta, 'seq', 1)
  if state == 'sold_out' then
    redis.call('HSET', done, qid, 'S')
  else
    if state == 'pre' and now < tonumber(redis.call('HGET', meta, 'opens_at')) then
      redis.call('ZADD', pre, seq, qid)  -- drawn at the opening
    else
      -- Behind everyone drawn (their places are below 2^52), in arrival order.
      redis.call('ZADD', line, 4503599627370496 + seq, qid)
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
