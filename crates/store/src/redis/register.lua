-- The lists under their caps: the list of namespaces, and a namespace's
-- list of experiments with its take-back marks and its numbers (see
-- register.rs for why they keep the lists whole). Each operation is
-- atomic, so two instances racing to create names can never exceed a cap
-- together.
--
-- KEYS[1]: the list (set), named by keys.rs (the key layout), as every key
-- is. For a namespace's list also, in its hash slot: KEYS[2] the marks of
-- the experiments being taken back (hash: experiment -> the number of the
-- take-back deciding it), KEYS[3] the namespace's number sequence
-- (string; numbers registrations and take-backs, never goes back).
-- ARGV: 1 the operation, 2 the member, 3 the operation's number:
--
-- add, cap (0 = no cap: imports and owners): returns {answer, number}:
--   answer 1 when the member was listed already (number: the sequence's
--   last), 2 when this call listed it, 3 when it was being taken back and
--   this call keeps it (the caller takes it back in turn unless it creates
--   it), 0 when the cap refused it; the number a creation is allowed with
--   (0 for the list of namespaces).
-- leave: marks a listed member as being taken back, with a new number
--   (returned; 0 when not listed). It stays listed, and counts under the
--   cap, until `go`.
-- stay, number: the take-back numbered so found the experiment: unmarks
--   it, if still so marked.
-- go, number: the take-back numbered so found no experiment: unlists the
--   member if still so marked. Returns how many the list holds then, or
--   -1 when the mark is gone (another call keeps or decides it).
-- relist: lists a member created without a cap, unmarked, with a new
--   number (an owner's record or an import, which may pass the cap).

local list, marks, sequence = KEYS[1], KEYS[2], KEYS[3]
local op, member = ARGV[1], ARGV[2]
local call = redis.call

if op == 'add' then
  local cap = tonumber(ARGV[3])
  if call('SISMEMBER', list, member) == 1 then
    if not marks then
      return {1, 0}
    end
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
  if cap > 0 and call('SCARD', list) >= cap then
    return {0, 0}
  end
  call('SADD', list, member)
  if not marks then
    return {2, 0}
  end
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
