-- Adds a member to a capped set: a namespace to the list of namespaces, or
-- an experiment to its namespace's list. Atomic, so two instances racing to
-- create names can never exceed the cap together.
--
-- KEYS[1]: the set, named by keys.rs (the key layout), as every key is.
-- ARGV: 1 member, 2 cap (0 = no cap: imports).
-- Returns 1 when the member was in the set already, 2 when this call added
-- it (the caller takes it back if it then creates nothing), 0 when the cap
-- refused it.

local set, member, cap = KEYS[1], ARGV[1], tonumber(ARGV[2])
if redis.call('SISMEMBER', set, member) == 1 then
  return 1
end
if cap > 0 and redis.call('SCARD', set) >= cap then
  return 0
end
redis.call('SADD', set, member)
return 2
