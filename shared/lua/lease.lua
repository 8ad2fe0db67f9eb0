-- Take or renew a lease: KEYS[1] is held by ARGV[1] for ARGV[2] ms if it is free or already
-- theirs. Returns 1 when the caller holds it now.
local holder = redis.call('GET', KEYS[1])
if holder == false or holder == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
