-- read-7.lua: a consistent snapshot of one session key, in one round trip (read only).
--
-- KEYS[1]  rec       string  session record payload
-- KEYS[2]  meta      hash    version, fence, owner, exp, at
-- KEYS[3]  turns     list    pending turn payloads
-- KEYS[4]  profile   string  identity profile payload
-- KEYS[5]  arch      zset    archived session ids, score = archived at (epoch ms)
-- KEYS[6]  archdata  hash    session id -> archived record payload
-- KEYS[7]  archtail  hash    session id -> JSON array of turn payloads said after its last save
--
-- ARGV[1]  what  'session' (rec, meta, turns, profile) | 'all' (also the archive)
--
-- Returns: { rec or nil, { version, fence, owner, exp, at } (nils when absent), { turn, ... }, profile or nil,
--            { id, score, payload, tail or '', ... } (only for 'all') }
local rec = redis.call('GET', KEYS[1])
local m = redis.call('HMGET', KEYS[2], 'version', 'fence', 'owner', 'exp', 'at')
local turns = redis.call('LRANGE', KEYS[3], 0, -1)
local profile = redis.call('GET', KEYS[4])
local arch = {}
if ARGV[1] == 'all' then
  local ids = redis.call('ZREVRANGE', KEYS[5], 0, -1, 'WITHSCORES')
  for i = 1, #ids, 2 do
    arch[#arch + 1] = ids[i]
    arch[#arch + 1] = ids[i + 1]
    arch[#arch + 1] = redis.call('HGET', KEYS[6], ids[i]) or ''
    arch[#arch + 1] = redis.call('HGET', KEYS[7], ids[i]) or ''
  end
end
return { rec, m, turns, profile, arch }
