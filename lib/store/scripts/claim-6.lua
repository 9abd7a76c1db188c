-- claim-6.lua: resume lookup + ownership claim of one session, in one round trip.
--
-- KEYS[1]  rec       string  session record payload
-- KEYS[2]  meta      hash    version, fence, owner, exp (lease end, epoch ms), at (claim arrival, epoch ms)
-- KEYS[3]  turns     list    turn payloads appended since the last save
-- KEYS[4]  profile   string  identity profile payload
-- KEYS[5]  arch      zset    archived session ids, score = archived at (epoch ms)
-- KEYS[6]  archtail  hash    session id -> JSON array of turn payloads said after its last save
--
-- ARGV[1]  owner         unique id of the claiming job
-- ARGV[2]  nowMs         now, epoch milliseconds (lease liveness; the claim's arrival, kept as at)
-- ARGV[3]  leaseExpMs    end of the new lease, epoch milliseconds (nowMs + leaseMs)
-- ARGV[4]  mode          'takeover' (newest wins) | 'exclusive' (only a free or lapsed lease) |
--                        'set_aside' (takeover of an unreadable record: it is deleted first, see below)
-- ARGV[5]  keepMs        TTL of rec / meta, milliseconds (max(sessionTtlMs, leaseMs))
-- ARGV[6]  turnsKeepMs   TTL of turns, milliseconds (max(keepMs, archiveTtlMs))
-- ARGV[7]  archiveTtlMs  TTL of archtail, milliseconds
--
-- Pending turns with no live record are the tail of a conversation whose owner crashed and
-- whose record then expired (its turns outlive it, see turnsKeepMs): they are kept with the
-- newest archived session (keepTail, include/keep_tail.lua) and not returned. 'set_aside'
-- deletes the record first (the caller could not read it; its archive copy holds it as last
-- saved), so its pending turns move the same way.
--
-- Returns:
--   { 0, fence, version, previousOwner or '', rec or nil, profile or nil, { turn, ... } }  claimed
--   { -1, owner, leaseExpMs }                                                             busy (exclusive only)
-- #include keep_tail.lua
local owner = ARGV[1]
local now = tonumber(ARGV[2])
local m = redis.call('HMGET', KEYS[2], 'version', 'fence', 'owner', 'exp')
local cur = m[3]
local live = cur and cur ~= '' and tonumber(m[4] or '0') > now
if ARGV[4] == 'exclusive' and live and cur ~= owner then
  return { -1, cur, tonumber(m[4]) }
end
local prev = ''
if live and cur ~= owner then prev = cur end
local fence = tonumber(m[2] or '0') + 1
local version = m[1] or '0'
redis.call('HSET', KEYS[2], 'fence', fence, 'owner', owner, 'exp', ARGV[3], 'version', version, 'at', ARGV[2])
redis.call('PEXPIRE', KEYS[2], ARGV[5])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
local rec = redis.call('GET', KEYS[1])
if rec and ARGV[4] == 'set_aside' then
  redis.call('DEL', KEYS[1])
  rec = false
end
local turns = redis.call('LRANGE', KEYS[3], 0, -1)
if not rec and #turns > 0 then
  keepTail(KEYS[5], KEYS[6], turns, ARGV[7])
  redis.call('DEL', KEYS[3])
  turns = {}
else
  redis.call('PEXPIRE', KEYS[3], ARGV[6])
end
local profile = redis.call('GET', KEYS[4])
return { 0, fence, tonumber(version), prev, rec, profile, turns }
