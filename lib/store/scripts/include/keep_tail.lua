-- keep_tail.lua (included by claim-6.lua and restore-7.lua with `-- #include keep_tail.lua`)
--
-- keepTail(archKey, tailKey, turns, ttlMs): pending turns with no live record are the tail of
-- a conversation whose owner crashed and whose record then expired: they belong to the newest
-- archived session (the last one saved) and are appended to its entry in tailKey, which keeps
-- ttlMs. With no archived session they belong to no saved conversation (a conversation's first
-- write is its save) and are dropped. The caller deletes the pending list.
--
-- archKey  zset   archived session ids, score = archived at (epoch ms)
-- tailKey  hash   session id -> JSON array of turn payloads said after its last save
-- turns    table  the pending turn payloads, oldest first
-- ttlMs    string TTL of tailKey, milliseconds
local function keepTail(archKey, tailKey, turns, ttlMs)
  local newest = redis.call('ZREVRANGE', archKey, 0, 0)[1]
  if not newest then return end
  local tail = redis.call('HGET', tailKey, newest)
  local all = tail and cjson.decode(tail) or {}
  for i = 1, #turns do all[#all + 1] = turns[i] end
  redis.call('HSET', tailKey, newest, cjson.encode(all))
  redis.call('PEXPIRE', tailKey, ttlMs)
end
