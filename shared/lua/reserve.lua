-- Decide a batch of booking requests for ONE event, atomically.
-- KEYS: 1 avail (int), 2 users (hash user -> quantity held or sold), 3 holds (hash booking
--       id -> "quantity|user"), 4 held (int: quantity in holds), 5 released (hash booking
--       id -> quantity given back by a transaction not yet known to have committed),
--       6 seats (bitmap: bit n set while seat n is taken; bit 0 always set), 7 seat holds
--       (hash booking id -> "5,6": the seats its gate hold claimed)
-- ARGV: 1 per-user limit, 2 the asks as a JSON array of [booking_id, user_id, quantity] or
--       [booking_id, user_id, quantity, [seat numbers]] for an ask that names its seats,
--       3 (optional) the releases, bookings expired or cancelled in this batch, as a JSON
--       array of [booking_id, user_id, quantity, [seat numbers]]: their stock and seats come
--       back first, so the asks can take them, and once per booking id however often the
--       batch is retried.
-- Returns one letter per ask, in order: "N" held now (stock taken by this call), "H" already
-- held by an earlier call (nothing taken), "S" sold out, "L" over the user's limit, "T" a
-- named seat is taken; or "MISSING" when the counter (or, for named seats, the seat bitmap)
-- is gone and must be rebuilt (nothing written).
-- Idempotent per booking id: a replay never takes stock twice for one booking.
-- Reads and writes each hash with a few bulk commands, not four commands per ask: for
-- thousands of asks, per-command overhead was most of the script's time.
local asks = cjson.decode(ARGV[2])
local named = false
for _, ask in ipairs(asks) do
  if ask[4] then
    named = true
    break
  end
end
if redis.call('EXISTS', KEYS[1]) == 0 or (named and redis.call('EXISTS', KEYS[6]) == 0) then
  return 'MISSING'
end
local CHUNK = 1000 -- stay well inside Lua's limit on unpack()

local function hmget(key, fields)
  local values = {}
  for first = 1, #fields, CHUNK do
    local last = math.min(first + CHUNK - 1, #fields)
    local got = redis.call('HMGET', key, unpack(fields, first, last))
    for i = 1, #got do
      values[first + i - 1] = got[i]
    end
  end
  return values
end

local function hset(key, flat)
  for first = 1, #flat, 2 * CHUNK do
    redis.call('HSET', key, unpack(flat, first, math.min(first + 2 * CHUNK - 1, #flat)))
  end
end

local releases = ARGV[3] and cjson.decode(ARGV[3]) or {}
if #releases > 0 then
  local release_ids = {}
  for i, release in ipairs(releases) do
    release_ids[i] = release[1]
  end
  local done = hmget(KEYS[5], release_ids)
  local back, given, users_back = 0, {}, {}
  for i, release in ipairs(releases) do
    local booking, user, qty = release[1], release[2], release[3]
    if not done[i] and not given[booking] then
      given[booking] = qty
      back = back + qty
      users_back[user] = (users_back[user] or 0) + qty
    end
  end
  if back > 0 then
    local map = redis.call('EXISTS', KEYS[6]) == 1
    for _, release in ipairs(releases) do
      if map and given[release[1]] and release[4] then
        for _, seat in ipairs(release[4]) do
          redis.call('SETBIT', KEYS[6], seat, 0)
        end
      end
    end
    local marks = {}
    for booking, qty in pairs(given) do
      marks[#marks + 1] = booking
      marks[#marks + 1] = qty
    end
    hset(KEYS[5], marks)
    for user, qty in pairs(users_back) do
      redis.call('HINCRBY', KEYS[2], user, -qty)
    end
    redis.call('INCRBY', KEYS[1], back)
  end
end

local limit = tonumber(ARGV[1])
local ids, users = {}, {}
for i, ask in ipairs(asks) do
  ids[i], users[i] = ask[1], ask[2]
end
local held_before = hmget(KEYS[3], ids)
local user_totals = hmget(KEYS[2], users)

-- A named seat is free when its bit is clear and no earlier ask of this call claimed it.
local claimed = {}
local function free(seats)
  for _, seat in ipairs(seats) do
    if claimed[seat] or redis.call('GETBIT', KEYS[6], seat) == 1 then
      return false
    end
  end
  return true
end

local avail = tonumber(redis.call('GET', KEYS[1]))
local totals, held_now = {}, {}
local new_holds, taken = {}, 0
local seat_holds = {}
local out = {}
for i, ask in ipairs(asks) do
  local booking, user, qty, seats = ask[1], ask[2], ask[3], ask[4]
  if held_before[i] or held_now[booking] then
    out[i] = 'H'
  else
    local mine = totals[user] or tonumber(user_totals[i] or '0')
    if mine + qty > limit then
      out[i] = 'L'
    elseif qty > avail then
      out[i] = 'S'
    elseif seats and not free(seats) then
      out[i] = 'T'
    else
      if seats then
        for _, seat in ipairs(seats) do
          claimed[seat] = true
        end
        seat_holds[#seat_holds + 1] = booking
        seat_holds[#seat_holds + 1] = table.concat(seats, ',')
      end
      avail = avail - qty
      taken = taken + qty
      totals[user] = mine + qty
      held_now[booking] = true
      new_holds[#new_holds + 1] = booking
      new_holds[#new_holds + 1] = qty .. '|' .. user
      out[i] = 'N'
    end
  end
end
if taken > 0 then
  local changed = {}
  for user, total in pairs(totals) do
    changed[#changed + 1] = user
    changed[#changed + 1] = total
  end
  hset(KEYS[2], changed)
  hset(KEYS[3], new_holds)
  if #seat_holds > 0 then
    hset(KEYS[7], seat_holds)
    for seat in pairs(claimed) do
      redis.call('SETBIT', KEYS[6], seat, 1)
    end
  end
  redis.call('DECRBY', KEYS[1], taken)
  redis.call('INCRBY', KEYS[4], taken)
end
return table.concat(out)
