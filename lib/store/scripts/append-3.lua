-- append-3.lua: append one turn to a claimed session, in one round trip.
--
-- KEYS[1]  meta   hash    version, fence, owner, exp
-- KEYS[2]  turns  list    turn payloads appended since the last save
-- KEYS[3]  rec    string  session record payload (TTL refreshed only)
--
-- ARGV[1]  owner            the lease holder's id
-- ARGV[2]  fence            the lease holder's fencing token (integer)
-- ARGV[3]  turn             the turn payload
-- ARGV[4]  maxPendingTurns  turns kept in the list (oldest dropped), count
-- ARGV[5]  sessionTtlMs     TTL of meta / rec, milliseconds
-- ARGV[6]  turnsKeepMs      TTL of turns, milliseconds (max(sessionTtlMs, archiveTtlMs): a crashed
--                           owner's last turns outlive its record, for the archive; see claim-6.lua)
--
-- Returns: { 0, newVersion } appended | { -3 } lease lost (no lease, other owner or fence)
local m = redis.call('HMGET', KEYS[1], 'owner', 'fence')
if m[1] ~= ARGV[1] or m[2] ~= ARGV[2] then return { -3 } end
local n = redis.call('RPUSH', KEYS[2], ARGV[3])
local max = tonumber(ARGV[4])
if n > max then redis.call('LTRIM', KEYS[2], -max, -1) end
local v = redis.call('HINCRBY', KEYS[1], 'version', 1)
redis.call('PEXPIRE', KEYS[1], ARGV[5])
redis.call('PEXPIRE', KEYS[2], ARGV[6])
redis.call('PEXPIRE', KEYS[3], ARGV[5])
return { 0, v }
