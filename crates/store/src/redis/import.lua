-- Sets the imported base of one counter (its count in the Lamed or Gimel
-- deployment it came from). Setting, not adding, makes an import safe to
-- run again. Counters read as tracked + imported.
--
-- Key names come from keys.rs (the key layout), never from this script:
-- KEYS are the experiment's keys, in the order of IMPORT_KEYS in admin.rs:
-- 1 variants (set), 2 goals (set), 3 imported bases (hash).
-- ARGV: 1 event, 2 variant, 3 is_goal (0/1), 4 count.
-- Returns {previous base or -1, created}.

local variants, goals, imported = KEYS[1], KEYS[2], KEYS[3]
local event, variant, is_goal, count = ARGV[1], ARGV[2], ARGV[3] == '1', ARGV[4]
local created = 1 - redis.call('EXISTS', variants)
local field = event .. '\31' .. variant
local previous = redis.call('HGET', imported, field)
redis.call('HSET', imported, field, count)
redis.call('SADD', variants, variant)
if is_goal then
  redis.call('SADD', goals, event)
end
if previous then
  return {tonumber(previous), created}
end
return {-1, created}
