-- After PostgreSQL committed a batch, drop its holds. A hold whose booking PostgreSQL refused
-- gives its stock back. Each hold is settled at most once: a missing hold is a no-op.
-- KEYS: 1 avail, 2 users, 3 holds, 4 held (as in reserve.lua)
-- ARGV: (booking_id, outcome) pairs; outcome "C" = confirmed in PostgreSQL, "R" = not.
-- Returns the quantity given back to the counter.
local released = 0
local settled = 0
for i = 1, #ARGV, 2 do
  local hold = redis.call('HGET', KEYS[3], ARGV[i])
  if hold then
    local sep = string.find(hold, '|', 1, true)
    local qty = tonumber(string.sub(hold, 1, sep - 1))
    local user = string.sub(hold, sep + 1)
    redis.call('HDEL', KEYS[3], ARGV[i])
    settled = settled + qty
    if ARGV[i + 1] == 'R' then
      released = released + qty
      redis.call('HINCRBY', KEYS[2], user, -qty)
    end
  end
end
if settled > 0 then
  redis.call('DECRBY', KEYS[4], settled)
end
if released > 0 and redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('INCRBY', KEYS[1], released)
end
return released
