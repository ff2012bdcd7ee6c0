-- Decides a take-back in the hash slot of what it takes back, atomically
-- with any creation of it (see register.rs): answers 1 when it exists (it
-- stays listed); else raises its fence to the take-back's number, so that
-- no registration numbered up to it creates it any more (they register
-- again), and answers 0.
--
-- Key names come from keys.rs (the key layout), never from this script:
-- KEYS share one hash slot: 1 what exists exactly when the member does
-- (an experiment's variants; a namespace's list of experiments, which is
-- gone when empty), 2 the member's fence (string). ARGV: 1 the take-back's
-- number.

local exists, fence = KEYS[1], KEYS[2]
local number = tonumber(ARGV[1])
if redis.call('EXISTS', exists) == 1 then
  return 1
end
if number > (tonumber(redis.call('GET', fence)) or 0) then
  redis.call('SET', fence, number)
end
return 0
