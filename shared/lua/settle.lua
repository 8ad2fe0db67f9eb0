-- After PostgreSQL committed a batch, drop its holds. A hold whose booking PostgreSQL refused
-- gives its stock back, and the seats it named. Each hold is settled at most once: a missing
-- hold is a no-op.
-- KEYS: 1 avail, 2 users, 3 holds, 4 held, 5 released, 6 seats, 7 seat holds (as in
--       reserve.lua)
-- ARGV: 1 the outcomes as a JSON array of [booking_id, outcome]; outcome "C" = kept in
--       PostgreSQL (held or confirmed), "R" = refused; 2 a JSON array of booking ids whose
--       release PostgreSQL committed: their marks in KEYS[5] are dropped; 3 (optional) the
--       seats PostgreSQL gave the kept bookings, as a JSON array of [first, last] runs of
--       seat numbers: marked taken in the seat bitmap, if the event has one.
-- Returns the quantity given back to the counter.
local CHUNK = 1000 -- stay well inside Lua's limit on unpack()
local outcomes = cjson.decode(ARGV[1])
local named = redis.call('HLEN', KEYS[7]) > 0
local map = redis.call('EXISTS', KEYS[6]) == 1
local released = 0
local settled = 0
local seen = {} -- a booking listed twice settles once
for first = 1, #outcomes, CHUNK do
  local last = math.min(first + CHUNK - 1, #outcomes)
  local ids = {}
  for i = first, last do
    ids[#ids + 1] = outcomes[i][1]
  end
  local holds = redis.call('HMGET', KEYS[3], unpack(ids))
  local seat_holds = named and redis.call('HMGET', KEYS[7], unpack(ids)) or {}
  local gone = {}
  for j, hold in ipairs(holds) do
    if hold and not seen[ids[j]] then
      seen[ids[j]] = true
      local sep = string.find(hold, '|', 1, true)
      local qty = tonumber(string.sub(hold, 1, sep - 1))
      gone[#gone + 1] = ids[j]
      settled = settled + qty
      if outcomes[first + j - 1][2] == 'R' then
        released = released + qty
        redis.call('HINCRBY', KEYS[2], string.sub(hold, sep + 1), -qty)
        if map and seat_holds[j] then
          for seat in string.gmatch(seat_holds[j], '%d+') do
            redis.call('SETBIT', KEYS[6], seat, 0)
          end
        end
      end
    end
  end
  if #gone > 0 then
    redis.call('HDEL', KEYS[3], unpack(gone))
    if named then
      redis.call('HDEL', KEYS[7], unpack(gone))
    end
  end
end
if settled > 0 then
  redis.call('DECRBY', KEYS[4], settled)
end
if released > 0 and redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('INCRBY', KEYS[1], released)
end
local committed = cjson.decode(ARGV[2])
for first = 1, #committed, CHUNK do
  redis.call('HDEL', KEYS[5], unpack(committed, first, math.min(first + CHUNK - 1, #committed)))
end
-- Whole bytes of a run at once (bit 0 is the high bit of byte 0), its ragged ends bit by bit.
if map and ARGV[3] then
  for _, run in ipairs(cjson.decode(ARGV[3])) do
    local from, to = run[1], run[2]
    while from <= to and from % 8 ~= 0 do
      redis.call('SETBIT', KEYS[6], from, 1)
      from = from + 1
    end
    local bytes = math.floor((to - from + 1) / 8)
    if bytes > 0 then
      redis.call('SETRANGE', KEYS[6], from / 8, string.rep('\255', bytes))
      from = from + 8 * bytes
    end
    while from <= to do
      redis.call('SETBIT', KEYS[6], from, 1)
      from = from + 1
    end
  end
end
return released
