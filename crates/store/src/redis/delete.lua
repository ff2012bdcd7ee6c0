-- Removes one experiment's counters, values, names, daily counters,
-- segment counters, record, memberships and weight history.
--
-- Key names come from keys.rs (the key layout), never from this script:
-- KEYS are the experiment's keys, in the order of DELETE_KEYS in admin.rs:
-- 1 the days (zset), 2 the dedupe meta (hash), then the keys removed, of
-- which the first ARGV[2] tell whether the experiment existed. ARGV: 1 the
-- prefix of the daily counters' keys (the day number follows), 2 how many
-- keys after KEYS[2] tell whether it existed.
--
-- UNLINK, not DEL: a large value (a million memberships) is freed by
-- Redis's background thread, so the script costs O(keys) and tracking
-- never waits on a delete.
--
-- The dedupe memory is kept, as in the embedded store: it expires on its
-- own, and a re-sent event stays a duplicate. So is the fence (not in
-- KEYS): a registration fenced before must not create the experiment
-- after (see register.rs). Returns 1 when the experiment existed.

local days_key, meta_key = KEYS[1], KEYS[2]
local day_prefix, telling = ARGV[1], tonumber(ARGV[2])
local removed = {unpack(KEYS, 3)}
local existed = redis.call('EXISTS', unpack(removed, 1, telling))
for _, day in ipairs(redis.call('ZRANGE', days_key, 0, -1)) do
  redis.call('UNLINK', day_prefix .. day)
end
redis.call('UNLINK', unpack(removed))
-- The next event starts the day's bookkeeping afresh.
redis.call('HDEL', meta_key, 'day')
if existed > 0 then
  return 1
end
return 0
