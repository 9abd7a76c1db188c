-- prune_archive.lua (included by save-7.lua and restore-7.lua with `-- #include prune_archive.lua`)
--
-- pruneArchive(archKey, dataKey, tailKey, maxCount, cutoffMs): drops the archived sessions scored
-- below cutoffMs (past retention), then the oldest beyond maxCount, each with its payload and the
-- turns kept after its last save.
--
-- archKey   zset    archived session ids, score = archived at (epoch ms)
-- dataKey   hash    session id -> archived record payload
-- tailKey   hash    session id -> JSON array of turn payloads said after its last save
-- maxCount  string  archived sessions kept, count
-- cutoffMs  string  entries scored below this are dropped, epoch milliseconds
local function pruneArchive(archKey, dataKey, tailKey, maxCount, cutoffMs)
  local old = redis.call('ZRANGEBYSCORE', archKey, '-inf', '(' .. cutoffMs)
  if #old > 0 then
    redis.call('HDEL', dataKey, unpack(old))
    redis.call('HDEL', tailKey, unpack(old))
    redis.call('ZREMRANGEBYSCORE', archKey, '-inf', '(' .. cutoffMs)
  end
  local n = redis.call('ZCARD', archKey)
  local max = tonumber(maxCount)
  if n > max then
    local drop = redis.call('ZRANGE', archKey, 0, n - max - 1)
    redis.call('HDEL', dataKey, unpack(drop))
    redis.call('HDEL', tailKey, unpack(drop))
    redis.call('ZREMRANGEBYRANK', archKey, 0, n - max - 1)
  end
end
