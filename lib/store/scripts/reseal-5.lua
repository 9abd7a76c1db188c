-- reseal-5.lua: replaces stored payloads of one session by the same payloads sealed under
-- another key (key rotation), each only if it still holds exactly what was read: a payload a
-- job rewrote meanwhile is left as the job wrote it. TTLs are kept. One round trip.
--
-- KEYS[1]  rec       string  session record payload
-- KEYS[2]  turns     list    pending turn payloads
-- KEYS[3]  profile   string  identity profile payload
-- KEYS[4]  archdata  hash    session id -> archived record payload
-- KEYS[5]  archtail  hash    session id -> JSON array of turn payloads said after its last save
--
-- ARGV     quads: slot (1-5, the KEYS index), where (list index from 0 for turns, hash field for
--          archdata / archtail, '' for the strings), the payload read, its replacement
--
-- Returns: one flag per quad, in order: 1 replaced | 0 a conflict (no longer the payload read)
local done = {}
for i = 1, #ARGV, 4 do
  local slot, where, old, new = tonumber(ARGV[i]), ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
  local key = KEYS[slot]
  local cur
  if slot == 2 then
    cur = redis.call('LINDEX', key, where)
  elseif slot >= 4 then
    cur = redis.call('HGET', key, where)
  else
    cur = redis.call('GET', key)
  end
  if cur == old then
    if slot == 2 then
      redis.call('LSET', key, where, new)
    elseif slot >= 4 then
      redis.call('HSET', key, where, new)
    else
      redis.call('SET', key, new, 'KEEPTTL')
    end
    done[#done + 1] = 1
  else
    done[#done + 1] = 0
  end
end
return done
