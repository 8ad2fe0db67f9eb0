-- Store booking records for polling clients, a whole batch in one call.
-- KEYS: one record key per booking; ARGV: 1 TTL in seconds, 2 "NX" (only where no record
-- exists yet: the API's PENDING, which must never hide a decision) or "ALWAYS" (the
-- worker's decisions), 3 a pub/sub channel told every record written, one "key<TAB>value"
-- line each (so a listener needs no read of its own), or "" for none, then one value per
-- key, in the same order.
-- Returns how many records were written.
-- The keys are not hash-tagged (a poll only knows the booking id), so on a Redis Cluster a
-- batch would have to be split by slot before calling this.
local written = 0
for i, key in ipairs(KEYS) do
  local ok
  if ARGV[2] == 'NX' then
    ok = redis.call('SET', key, ARGV[i + 3], 'EX', ARGV[1], 'NX')
  else
    ok = redis.call('SET', key, ARGV[i + 3], 'EX', ARGV[1])
  end
  if ok then
    written = written + 1
  end
end
-- After the writes, so a listener that reads a record it was told about finds it.
if ARGV[3] ~= '' and #KEYS > 0 then
  local lines = {}
  for i, key in ipairs(KEYS) do
    lines[i] = key .. '\t' .. ARGV[i + 3]
  end
  redis.call('PUBLISH', ARGV[3], table.concat(lines, '\n'))
end
return written
