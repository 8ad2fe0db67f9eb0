-- Rebuild an event's gate from PostgreSQL's numbers, unless someone already did.
-- KEYS: 1 avail, 2 users, 3 holds, 4 held, 5 released (as in reserve.lua)
-- ARGV: 1 available (capacity - sold - held), then (user_id, held or confirmed quantity)
--       pairs.
-- Returns 1 if rebuilt, 0 if the counter existed (nothing written).
if redis.call('EXISTS', KEYS[1]) == 1 then
  return 0
end
redis.call('DEL', KEYS[2], KEYS[3], KEYS[4], KEYS[5])
for i = 2, #ARGV, 2 do
  redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1])
end
redis.call('SET', KEYS[4], 0)
redis.call('SET', KEYS[1], ARGV[1])
return 1
