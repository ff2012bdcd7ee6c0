-- Decides a take-back in the experiment's hash slot, atomically with any
-- creation of it (see register.rs): answers 1 when the experiment exists
-- (it stays listed); else raises its fence to the take-back's number, so
-- that no registration numbered up to it creates the experiment any more
-- (track.lua refuses them: they register again), and answers 0.
--
-- Key names come from keys.rs (the key layout), never from this script:
-- KEYS are the experiment's keys, in the order of FENCE_KEYS in
-- register.rs: 1 variants (set; exists iff the experiment does), 2 fence
-- (string). ARGV: 1 the take-back's number.

local variants, fence = KEYS[1], KEYS[2]
local number = tonumber(ARGV[1])
if redis.call('EXISTS', variants) == 1 then
  return 1
end
if number > (tonumber(redis.call('GET', fence)) or 0) then
  redis.call('SET', fence, number)
end
return 0
