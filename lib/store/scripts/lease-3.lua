-- lease-3.lua: release or renew a held lease, in one round trip.
--
-- KEYS[1]  meta   hash    version, fence, owner, exp
-- KEYS[2]  rec    string  session record payload (TTL refreshed on renew)
-- KEYS[3]  turns  list    pending turns (TTL refreshed on renew)
--
-- ARGV[1]  op          'release' | 'renew'
-- ARGV[2]  owner       the lease holder's id
-- ARGV[3]  fence       the lease holder's fencing token (integer)
-- ARGV[4]  leaseExpMs  new end of the lease, epoch milliseconds (renew)
-- ARGV[5]  keepMs      TTL of meta / rec, milliseconds (renew)
-- ARGV[6]  turnsKeepMs TTL of turns, milliseconds (renew; max(keepMs, archiveTtlMs), see claim-6.lua)
--
-- Returns: 1 done | 0 the lease had moved (nothing changed)
local m = redis.call('HMGET', KEYS[1], 'owner', 'fence')
if m[1] ~= ARGV[2] or m[2] ~= ARGV[3] then return 0 end
if ARGV[1] == 'release' then
  redis.call('HDEL', KEYS[1], 'owner')
  redis.call('HSET', KEYS[1], 'exp', '0')
else
  redis.call('HSET', KEYS[1], 'exp', ARGV[4])
  redis.call('PEXPIRE', KEYS[1], ARGV[5])
  redis.call('PEXPIRE', KEYS[2], ARGV[5])
  redis.call('PEXPIRE', KEYS[3], ARGV[6])
end
return 1
