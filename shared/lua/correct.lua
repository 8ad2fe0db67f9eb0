-- Set an idle event's counter to PostgreSQL's number, but only if nothing touched the gate
-- since the caller looked (compare-and-set): no hold outstanding, no release waiting for its
-- commit, and the counter unchanged.
-- KEYS: 1 avail, 2 held, 3 released. ARGV: 1 the counter value the caller saw, 2 the corrected value.
-- Returns 1 if corrected, 0 if the gate moved (the caller tries again later).
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return 0
end
if tonumber(redis.call('GET', KEYS[2]) or '0') ~= 0 or redis.call('HLEN', KEYS[3]) ~= 0 then
  return 0
end
redis.call('SET', KEYS[1], ARGV[2])
return 1
