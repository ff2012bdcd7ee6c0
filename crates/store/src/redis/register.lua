-- A list under its cap, with the marks of its members being taken back and
-- its number sequence: the list of namespaces, or a namespace's list of
-- experiments (see register.rs for why they keep the lists whole). Each
-- operation is atomic, so two instances racing to create names can never
-- exceed a cap together.
--
-- Key names come from keys.rs (the key layout), never from this script;
-- KEYS share one hash slot: 1 the list (set), 2 the marks of the members
-- being taken back (hash: member -> the number of the take-back deciding
-- it), 3 the sequence (string: the last number of a registration or
-- take-back; never goes back); for a namespace's list of experiments also
-- 4 the namespace's fence (string: see `add`).
-- ARGV: 1 the operation, 2 the member, then:
--
-- add, 3 cap (0 = no cap: imports and owners), 4 for a list of experiments
--   the number of the namespace's registration: returns {answer, number}:
--   answer 1 when the member was listed already (number: the sequence's
--   last), 2 when this call listed it, 3 when it was being taken back and
--   this call keeps it (the caller takes it back in turn unless it creates
--   it), 0 when the cap refused it, 4 when the list is empty and the
--   namespace's number is not above its fence (a take-back found the
--   namespace empty after that registration: register the namespace
--   again); the number a creation is allowed with.
-- leave: marks a listed member as being taken back, with a new number
--   (returned; 0 when not listed). It stays listed, and counts under the
--   cap, until `go`.
-- stay, 3 number: the take-back numbered so found the member: unmarks it,
--   if still so marked.
-- go, 3 number: the take-back numbered so found no member: unlists it if
--   still so marked. Returns how many the list holds then, or -1 when the
--   mark is gone (another call keeps or decides it).
-- relist: lists a member created without a cap, unmarked, with a new
--   number (an owner's record or an import, which may pass the cap).

local list, marks, sequence, namespace_fence = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local op, member = ARGV[1], ARGV[2]
local call = redis.call

if op == 'add' then
  local cap = tonumber(ARGV[3])
  if call('SISMEMBER', list, member) == 1 then
    if call('HDEL', marks, member) == 1 then
      return {3, call('INCR', sequence)}
    end
    local last = tonumber(call('GET', sequence))
    if not last then
      -- Lists older than the sequence: numbers start now.
      last = call('INCR', sequence)
    end
    return {1, last}
  end
  local size = call('SCARD', list)
  if namespace_fence and size == 0
      and tonumber(ARGV[4]) <= (tonumber(call('GET', namespace_fence)) or 0) then
    return {4, 0}
  end
  if cap > 0 and size >= cap then
    return {0, 0}
  end
  call('SADD', list, member)
  return {2, call('INCR', sequence)}
elseif op == 'leave' then
  if call('SISMEMBER', list, member) == 0 then
    return 0
  end
  local number = call('INCR', sequence)
  call('HSET', marks, member, number)
  return number
elseif op == 'stay' then
  if call('HGET', marks, member) == ARGV[3] then
    call('HDEL', marks, member)
  end
  return 1
elseif op == 'go' then
  if call('HGET', marks, member) ~= ARGV[3] then
    return -1
  end
  call('HDEL', marks, member)
  call('SREM', list, member)
  return call('SCARD', list)
elseif op == 'relist' then
  call('SADD', list, member)
  call('HDEL', marks, member)
  call('INCR', sequence)
  return 1
end
return redis.error_reply('unknown list operation ' .. tostring(op))
