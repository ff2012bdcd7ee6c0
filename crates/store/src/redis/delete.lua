-- Removes one experiment's counters, values, names, daily counters,
-- record, memberships and weight history.
--
-- KEYS[1] = "<prefix>:{<tag>}". The dedupe memory is kept, as in the
-- embedded store: it expires on its own, and a re-sent event stays a
-- duplicate. Returns 1 when the experiment existed.

local base = KEYS[1]
local existed = redis.call('EXISTS', base .. ':v', base .. ':c', base .. ':i', base .. ':r')
for _, day in ipairs(redis.call('ZRANGE', base .. ':days', 0, -1)) do
  redis.call('DEL', base .. ':d:' .. day)
end
redis.call('DEL', base .. ':v', base .. ':g', base .. ':f', base .. ':c', base .. ':i', base .. ':days',
  base .. ':r', base .. ':x', base .. ':n', base .. ':w')
-- The next event starts the day's bookkeeping afresh.
redis.call('HDEL', base .. ':m', 'day')
if existed > 0 then
  return 1
end
return 0
