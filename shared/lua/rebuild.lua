-- Rebuild an event's gate from PostgreSQL's numbers, unless someone already did: the counter
-- and the users when the counter is gone, the seat bitmap when it is gone; everything when
-- forced (a promoted replica may hold a stale copy, which is worse than none).
-- KEYS: 1 avail, 2 users, 3 holds, 4 held, 5 released, 6 seats, 7 seat holds (as in
--       reserve.lua)
-- ARGV: 1 available (capacity - sold - held), 2 the seat bitmap (bit n set when seat n is
--       held or sold in PostgreSQL, bit 0 set), 3 "1" to rebuild even what exists, then
--       (user_id, held or confirmed quantity) pairs.
-- Returns 1 if anything was rebuilt, 0 if both existed (nothing written).
local rebuilt = 0
if ARGV[3] == '1' then
  redis.call('DEL', KEYS[1], KEYS[6])
end
if redis.call('EXISTS', KEYS[6]) == 0 or redis.call('EXISTS', KEYS[1]) == 0 then
  -- Seat claims of gate holds are lost with the bitmap: forget them with it.
  redis.call('SET', KEYS[6], ARGV[2])
  redis.call('DEL', KEYS[7])
  rebuilt = 1
end
if redis.call('EXISTS', KEYS[1]) == 1 then
  return rebuilt
end
redis.call('DEL', KEYS[2], KEYS[3], KEYS[4], KEYS[5])
for i = 4, #ARGV, 2 do
  redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1])
end
redis.call('SET', KEYS[4], 0)
redis.call('SET', KEYS[1], ARGV[1])
return 1
