-- Sets the imported base of one counter (its count in the Lamed or Gimel
-- deployment it came from). Setting, not adding, makes an import safe to
-- run again. Counters read as tracked + imported.
--
-- KEYS[1] = "<prefix>:{<tag>}". ARGV: 1 event, 2 variant, 3 is_goal (0/1),
-- 4 count. Returns {previous base or -1, created}.

local base = KEYS[1]
local event, variant, is_goal, count = ARGV[1], ARGV[2], ARGV[3] == '1', ARGV[4]
local created = 1 - redis.call('EXISTS', base .. ':v')
local field = event .. '\31' .. variant
local previous = redis.call('HGET', base .. ':i', field)
redis.call('HSET', base .. ':i', field, count)
redis.call('SADD', base .. ':v', variant)
if is_goal then
  redis.call('SADD', base .. ':g', event)
end
if previous then
  return {tonumber(previous), created}
end
return {-1, created}
