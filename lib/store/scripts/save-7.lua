-- save-7.lua: compare-and-set write of a whole record (save | suspend | end), in one round trip.
--
-- KEYS[1]  rec       string  session record payload
-- KEYS[2]  meta      hash    version, fence, owner, exp
-- KEYS[3]  turns     list    pending turns (folded into the record by the caller: deleted)
-- KEYS[4]  profile   string  identity profile payload
-- KEYS[5]  arch      zset    archived session ids, score = archived at (epoch ms)
-- KEYS[6]  archdata  hash    session id -> archived record payload
-- KEYS[7]  archtail  hash    session id -> turns said after its last save (claim-6.lua); pruned with it
--
-- ARGV[1]   owner            the lease holder's id
-- ARGV[2]   fence            the lease holder's fencing token (integer)
-- ARGV[3]   expectedVersion  the version the caller read (integer)
-- ARGV[4]   mode             'save' | 'suspend' (also release) | 'end' (also delete rec, release); every mode
--                            writes the archive copy (see below)
-- ARGV[5]   rec              record payload
-- ARGV[6]   profile          profile payload
-- ARGV[7]   sessionTtlMs     TTL of rec / meta, milliseconds
-- ARGV[8]   profileTtlMs     TTL of profile, milliseconds
-- ARGV[9]   archiveTtlMs     TTL of arch / archdata / archtail, milliseconds
-- ARGV[10]  archiveMaxCount  archived sessions kept, count
-- ARGV[11]  nowMs            archive score, epoch milliseconds (a save passes the record's lastSeenAt)
-- ARGV[12]  cutoffMs         archive entries scored below this are dropped, epoch milliseconds
-- ARGV[13]  sessionId        archive member
--
-- Returns: { 0, newVersion } written | { -3 } lease lost | { -4, currentVersion } version conflict
-- #include prune_archive.lua
local m = redis.call('HMGET', KEYS[2], 'owner', 'fence', 'version')
if m[1] ~= ARGV[1] or m[2] ~= ARGV[2] then return { -3 } end
if (m[3] or '0') ~= ARGV[3] then return { -4, tonumber(m[3] or '0') } end
local mode = ARGV[4]
local v = redis.call('HINCRBY', KEYS[2], 'version', 1)
redis.call('DEL', KEYS[3])
if mode == 'end' then
  redis.call('DEL', KEYS[1])
else
  redis.call('SET', KEYS[1], ARGV[5], 'PX', ARGV[7])
end
if mode ~= 'save' then
  redis.call('HDEL', KEYS[2], 'owner')
  redis.call('HSET', KEYS[2], 'exp', '0')
end
-- Every write refreshes the session's archive copy, so a session whose owner crashed (never
-- suspended or ended) is still in the archive, as last saved, after its live record expires
-- (with the turns appended after this save: claim-6.lua).
redis.call('ZADD', KEYS[5], ARGV[11], ARGV[13])
redis.call('HSET', KEYS[6], ARGV[13], ARGV[5])
pruneArchive(KEYS[5], KEYS[6], KEYS[7], ARGV[10], ARGV[12])
redis.call('PEXPIRE', KEYS[5], ARGV[9])
redis.call('PEXPIRE', KEYS[6], ARGV[9])
redis.call('PEXPIRE', KEYS[7], ARGV[9])
redis.call('PEXPIRE', KEYS[2], ARGV[7])
redis.call('SET', KEYS[4], ARGV[6], 'PX', ARGV[8])
return { 0, v }
