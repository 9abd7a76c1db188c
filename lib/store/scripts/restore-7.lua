-- restore-7.lua: write a full session snapshot (tier replay after an outage), in one round trip.
--
-- KEYS[1]  rec       string  session record payload
-- KEYS[2]  meta      hash    version, fence, owner, exp, at (claim arrival, epoch ms)
-- KEYS[3]  turns     list    pending turns (cleared: the snapshot record holds them)
-- KEYS[4]  profile   string  identity profile payload
-- KEYS[5]  arch      zset    archived session ids, score = archived at (epoch ms)
-- KEYS[6]  archdata  hash    session id -> archived record payload
-- KEYS[7]  archtail  hash    session id -> JSON array of turn payloads said after its last save
--
-- ARGV[1]   fence         the snapshot's fencing token (integer)
-- ARGV[2]   version       the snapshot's version (integer)
-- ARGV[3]   owner         lease owner after the write, '' for a released lease
-- ARGV[4]   leaseExpMs    lease end, epoch milliseconds ('0' for none)
-- ARGV[5]   rec           record payload, '' for none
-- ARGV[6]   profile       profile payload, '' to leave the stored one
-- ARGV[7]   sessionTtlMs  TTL of rec / meta, milliseconds
-- ARGV[8]   profileTtlMs  TTL of profile, milliseconds
-- ARGV[9]   archiveTtlMs  TTL of arch / archdata / archtail, milliseconds
-- ARGV[10]  writeSession  '1' to write rec / meta / turns, '0' for profile and archive only
-- ARGV[11]  writer        the job the snapshot comes from ('' unknown)
-- ARGV[12]  nowMs         now, epoch milliseconds (lease liveness; archive score of a refused record)
-- ARGV[13]  forkId        archive member of the record if the session is refused ('' when there is no record)
-- ARGV[14]  claimedAtMs   arrival of the snapshot lease's claim, epoch ms ('0' unknown)
-- ARGV[15]  archiveMaxCount  archived sessions kept, count
-- ARGV[16]  cutoffMs      archive entries scored below this are dropped, epoch milliseconds
-- ARGV[17]  n             number of archive entries that follow
-- ARGV[18 + 3i .. 20 + 3i]  archivedAtMs (epoch ms), sessionId, payload
--
-- The session (rec / meta / turns) and the profile are written unless another owner holds a
-- live lease (exp > nowMs) claimed at or after the snapshot's lease (the newest arrival wins; a
-- tie keeps the holder), or a released or lapsed lease claimed strictly after it (a newer
-- conversation that paused or ended is still newer); when either claim time is unknown, fences
-- compare the same way (restoreYields in session_store.ts; fences of a Redis that restarted empty start again at 1,
-- so only claim times order its leases against the replaying job's). The stored version and
-- fence never go backwards. Archive entries are merged either way (the newest copy of a member wins); a
-- refused record is archived as forkId (scored nowMs), so the conversation it holds is kept; the
-- archive is then bounded as a save bounds it (pruneArchive).
--
-- A written session's pending turns that are not the writer's own, or with no live record (a
-- crashed or cut-off owner's last turns), are kept with the newest archived session first
-- (keepTail, include/keep_tail.lua), as claim-6.lua does. The caller sends writeSession '0' for a
-- snapshot that carries no conversation (restoreWritesSession in session_store.ts).
--
-- Returns: { 0, version, fence } restored | { -5 } another owner's lease orders after the snapshot's
-- #include keep_tail.lua
-- #include prune_archive.lua
local m = redis.call('HMGET', KEYS[2], 'fence', 'version', 'owner', 'exp', 'at')
local fence = tonumber(ARGV[1])
local version = tonumber(ARGV[2])
local claimedAt = tonumber(ARGV[14])
local refused = false
local mine = ARGV[11] ~= '' and m[3] == ARGV[11]
if m[1] then
  local cur = tonumber(m[1])
  local live = m[3] and m[3] ~= '' and tonumber(m[4] or '0') > tonumber(ARGV[12])
  local curAt = tonumber(m[5] or '0')
  local h, s = cur, fence
  if curAt > 0 and claimedAt > 0 then h, s = curAt, claimedAt end
  refused = not mine and ((live and h >= s) or (not live and h > s))
  if cur > fence then fence = cur end
  local curVersion = tonumber(m[2] or '0')
  if curVersion >= version then version = curVersion + 1 end
end
-- Merges the snapshot's archive entries (and the refused record); run after any tail move
-- below, which belongs to the newest entry stored before this snapshot.
local function mergeArchive()
  local archived = 0
  local function archive(score, id, payload)
    local have = redis.call('ZSCORE', KEYS[5], id)
    if not have or tonumber(have) < tonumber(score) then
      redis.call('ZADD', KEYS[5], score, id)
      redis.call('HSET', KEYS[6], id, payload)
      archived = archived + 1
    end
  end
  for i = 0, tonumber(ARGV[17]) - 1 do archive(ARGV[18 + 3 * i], ARGV[19 + 3 * i], ARGV[20 + 3 * i]) end
  if refused and ARGV[13] ~= '' then archive(ARGV[12], ARGV[13], ARGV[5]) end
  if archived > 0 then
    pruneArchive(KEYS[5], KEYS[6], KEYS[7], ARGV[15], ARGV[16])
    redis.call('PEXPIRE', KEYS[5], ARGV[9])
    redis.call('PEXPIRE', KEYS[6], ARGV[9])
  end
end
if refused then
  mergeArchive()
  return { -5 }
end
if ARGV[10] == '1' then
  -- Pending turns that are not the writer's own, or with no live record, were said after
  -- another owner's last save (a crashed or cut-off job's): kept with the newest archived
  -- session (the entry that save wrote), as claim-6.lua does, before the snapshot replaces the
  -- session.
  if redis.call('LLEN', KEYS[3]) > 0 and (not mine or redis.call('EXISTS', KEYS[1]) == 0) then
    keepTail(KEYS[5], KEYS[7], redis.call('LRANGE', KEYS[3], 0, -1), ARGV[9])
  end
  redis.call('DEL', KEYS[2], KEYS[3])
  redis.call('HSET', KEYS[2], 'version', version, 'fence', fence, 'exp', ARGV[4], 'at', ARGV[14])
  if ARGV[3] ~= '' then redis.call('HSET', KEYS[2], 'owner', ARGV[3]) end
  redis.call('PEXPIRE', KEYS[2], ARGV[7])
  if ARGV[5] ~= '' then
    redis.call('SET', KEYS[1], ARGV[5], 'PX', ARGV[7])
  else
    redis.call('DEL', KEYS[1])
  end
end
if ARGV[6] ~= '' then redis.call('SET', KEYS[4], ARGV[6], 'PX', ARGV[8]) end
mergeArchive()
return { 0, version, fence }
