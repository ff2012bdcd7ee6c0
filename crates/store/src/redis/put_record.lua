-- Writes an experiment's registry record when its precondition holds: the
-- check and the write are one atomic step, so no other instance's write
-- comes between them.
--
-- Key names come from keys.rs (the key layout), never from this script:
-- KEYS are the experiment's keys, in the order of PUT_RECORD_KEYS in
-- registry.rs: 1 registry (hash), 2 variants (set), 3 goals (set). They
-- share one hash slot, so the script runs unchanged on a Redis Cluster.
--
-- ARGV: 1 the precondition, `any`, `absent` or `version`, 2 the version it
-- expects (with `version`), 3 the version of a record's first write, 4
-- the status, 5 the record (JSON), 6 how many variants follow, then the
-- variants, then the goals.
--
-- The version is the registry hash's `version` field; a record without
-- one (written before records had versions, or by track.lua in open mode)
-- is at the first version. Returns {1, new version} when written, or
-- {0, current version, 0 without a record} when the precondition failed:
-- nothing was written then. Every read comes before the first write, so
-- an error (WRONGTYPE) leaves Redis as it was.

local registry, variants, goals = KEYS[1], KEYS[2], KEYS[3]
local mode, expected, first = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local status, record, variant_count = ARGV[4], ARGV[5], tonumber(ARGV[6])

local held = redis.call('HMGET', registry, 'status', 'version')
local current = false
if held[1] then
  current = tonumber(held[2]) or first
end
local holds = mode == 'any'
  or (mode == 'absent' and not current)
  or (mode == 'version' and current == expected)
if not holds then
  return {0, current or 0}
end

local version = first
if current then
  version = current + 1
end
redis.call('HSET', registry, 'status', status, 'record', record, 'version', version)
-- One name per call: a definition's names are few, and no `unpack` limit
-- applies.
for i = 7, #ARGV do
  local set = goals
  if i < 7 + variant_count then
    set = variants
  end
  redis.call('SADD', set, ARGV[i])
end
return {1, version}
