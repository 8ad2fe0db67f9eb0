-- Decide a batch of booking requests for ONE event, atomically.
-- KEYS: 1 avail (int), 2 users (hash user -> quantity held or sold), 3 holds (hash booking
--       id -> "quantity|user"), 4 held (int: quantity in holds)
-- ARGV: 1 per-user limit, then (booking_id, user_id, quantity) triples.
-- Returns one code per booking: "N" held now (stock taken by this call), "H" already held
-- by an earlier call (nothing taken), "S" sold out, "L" over the user's limit; or {"MISSING"}
-- when the counter is gone and must be rebuilt (nothing written).
-- Idempotent per booking id: a replay never takes stock twice for one booking.
if redis.call('EXISTS', KEYS[1]) == 0 then
  return {'MISSING'}
end
local limit = tonumber(ARGV[1])
local avail = tonumber(redis.call('GET', KEYS[1]))
local taken = 0
local out = {}
for i = 2, #ARGV, 3 do
  local booking, user, qty = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2])
  if redis.call('HEXISTS', KEYS[3], booking) == 1 then
    out[#out + 1] = 'H'
  else
    local mine = tonumber(redis.call('HGET', KEYS[2], user) or '0')
    if mine + qty > limit then
      out[#out + 1] = 'L'
    elseif qty > avail then
      out[#out + 1] = 'S'
    else
      avail = avail - qty
      taken = taken + qty
      redis.call('HINCRBY', KEYS[2], user, qty)
      redis.call('HSET', KEYS[3], booking, qty .. '|' .. user)
      out[#out + 1] = 'N'
    end
  end
end
if taken > 0 then
  redis.call('DECRBY', KEYS[1], taken)
  redis.call('INCRBY', KEYS[4], taken)
end
return out
