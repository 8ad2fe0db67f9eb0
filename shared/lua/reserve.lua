-- Decide a batch of booking requests for ONE event, atomically.
-- KEYS: 1 avail (int), 2 users (hash user -> quantity held or sold), 3 holds (hash booking
--       id -> "quantity|user"), 4 held (int: quantity in holds), 5 released (hash booking
--       id -> quantity given back by a transaction not yet known to have committed)
-- ARGV: 1 per-user limit, 2 the asks as a JSON array of [booking_id, user_id, quantity],
--       3 (optional) the releases, bookings expired or cancelled in this batch, as a JSON
--       array of [booking_id, user_id, quantity]: their stock comes back first, so the
--       asks can take it, and once per booking id however often the batch is retried.
-- Returns one letter per ask, in order: "N" held now (stock taken by this call), "H" already
-- held by an earlier call (nothing taken), "S" sold out, "L" over the user's limit; or
-- "MISSING" when the counter is gone and must be rebuilt (nothing written).
-- Idempotent per booking id: a replay never takes stock twice for one booking.
-- Reads and writes each hash with a few bulk commands, not four commands per ask: for
-- thousands of asks, per-command overhead was most of the script's time.
if redis.call('EXISTS', KEYS[1]) == 0 then
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
local asks = cjson.decode(ARGV[2])
local ids, users = {}, {}
for i, ask in ipairs(asks) do
  ids[i], users[i] = ask[1], ask[2]
end
local held_before = hmget(KEYS[3], ids)
local user_totals = hmget(KEYS[2], users)

local avail = tonumber(redis.call('GET', KEYS[1]))
local totals, held_now = {}, {}
local new_holds, taken = {}, 0
local out = {}
for i, ask in ipairs(asks) do
  local booking, user, qty = ask[1], ask[2], ask[3]
  if held_before[i] or held_now[booking] then
    out[i] = 'H'
  else
    local mine = totals[user] or tonumber(user_totals[i] or '0')
    if mine + qty > limit then
      out[i] = 'L'
    elseif qty > avail then
      out[i] = 'S'
    else
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
  redis.call('DECRBY', KEYS[1], taken)
  redis.call('INCRBY', KEYS[4], taken)
end
return table.concat(out)
