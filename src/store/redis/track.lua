-- Counts one event: caps, dedupe, counter and daily counter, atomically.
--
-- Every key is derived from KEYS[1] = "<prefix>:{<tag>}", so all of them
-- share one hash slot and the script runs unchanged on a Redis Cluster.
--
-- ARGV: 1 may_create (0/1), 2 event, 3 variant, 4 is_goal (0/1),
--       5 digest (8 binary bytes of the dedupe key), 6 shard seed (u32),
--       7 window in ms (0 = forever), 8 max variants, 9 max goals,
--       10 daily retention in days.
-- Returns {code, created}: code 0 counted, 1 duplicate, 2 variants cap,
-- 3 goals cap, 4 experiment unknown here (register it, then call again
-- with may_create = 1); created = 1 when this call created the experiment.

local base = KEYS[1]
local may_create, event, variant = ARGV[1], ARGV[2], ARGV[3]
local is_goal, digest, seed = ARGV[4] == '1', ARGV[5], tonumber(ARGV[6])
local window = tonumber(ARGV[7])
local max_variants, max_goals = tonumber(ARGV[8]), tonumber(ARGV[9])
local retention = tonumber(ARGV[10])

local call = redis.call
local vkey, gkey = base .. ':v', base .. ':g'

-- An experiment exists while it has a variant set. When it does not (new,
-- or deleted by another instance) the caller must first register it in
-- its namespace's list, where the experiments cap is checked. A known
-- variant proves the experiment exists, in one call.
local created = 0
local variant_known = call('SISMEMBER', vkey, variant) == 1
if not variant_known then
  if call('EXISTS', vkey) == 0 then
    if may_create ~= '1' then
      return {4, 0}
    end
    created = 1
  end
  if call('SCARD', vkey) >= max_variants then
    return {2, 0}
  end
end
local goal_known = true
if is_goal then
  goal_known = call('SISMEMBER', gkey, event) == 1
  if not goal_known and call('SCARD', gkey) >= max_goals then
    return {3, 0}
  end
end

-- Server time: every instance sharing this Redis uses the same clock.
local t = call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)

-- Dedupe memory: per bucket of time, a few small hashes ("shards") whose
-- fields are 8-byte digests and whose values are the first-seen time as an
-- offset into the bucket. A bucket's shards are grouped in levels: level l
-- has 16^l shards, and a bucket moves to the next level once the current
-- one holds about 64 entries per shard, so every shard stays small enough
-- for Redis's compact listpack encoding. Shard 0 of level 0 (the "head")
-- also keeps the bucket's entry count in the field "".
local function level_of(n)
  local level, cap, span = 0, 64, 64
  while n >= cap do
    level = level + 1
    span = span * 16
    cap = cap + span
  end
  return level
end

local bucket_ms, first_bucket, last_bucket
if window == 0 then
  bucket_ms, first_bucket, last_bucket = 0, 0, 0
else
  -- Two buckets per window: an entry lives at most 1.5 windows, and a
  -- lookup reads at most three buckets.
  bucket_ms = math.ceil(window / 2)
  first_bucket = math.floor((now - window) / bucket_ms)
  last_bucket = math.floor(now / bucket_ms)
end

-- Newest bucket first: a sighting found there is the latest one, and if
-- it is out of the window, older buckets hold nothing live either.
for bucket = last_bucket, first_bucket, -1 do
  local prefix = base .. ':s:' .. bucket .. ':'
  local head = call('HMGET', prefix .. '0:0', '', digest)
  if head[1] then
    local seen = head[2]
    local top, level, shards = level_of(tonumber(head[1])), 0, 1
    while not seen and level < top do
      level = level + 1
      shards = shards * 16
      seen = call('HGET', prefix .. level .. ':' .. (seed % shards), digest)
    end
    if seen then
      -- Exact window: duplicate only while the first sighting is less
      -- than `window` ms old. A duplicate never refreshes it.
      if window == 0 or bucket * bucket_ms + tonumber(seen) > now - window then
        return {1, 0}
      end
      break
    end
  end
end

-- New: remember it in the current bucket.
local prefix = base .. ':s:' .. last_bucket .. ':'
local head = prefix .. '0:0'
local before = call('HINCRBY', head, '', 1) - 1
local level = level_of(before)
local key = head
if level > 0 then
  key = prefix .. level .. ':' .. (seed % (16 ^ level))
end
if window == 0 then
  call('HSET', key, digest, 1)
else
  call('HSET', key, digest, now - last_bucket * bucket_ms)
  -- The bucket is useless once its newest possible entry left the window.
  local expire_at = (last_bucket + 1) * bucket_ms + window + 1000
  if before == 0 then
    call('PEXPIREAT', head, expire_at)
  end
  if level > 0 then
    call('PEXPIREAT', key, expire_at)
  end
end

if not variant_known then
  call('SADD', vkey, variant)
end
if not goal_known then
  call('SADD', gkey, event)
end
local field = event .. '\31' .. variant
call('HINCRBY', base .. ':c', field, 1)

-- Daily counters: one hash per UTC day, listed in a sorted set, both
-- forgotten after the retention.
local day = math.floor(now / 86400000)
local day_key = base .. ':d:' .. day
if call('HINCRBY', day_key, field, 1) == 1 then
  call('PEXPIREAT', day_key, (day + 1 + retention) * 86400000)
  call('ZADD', base .. ':days', day, day)
  call('ZREMRANGEBYSCORE', base .. ':days', '-inf', '(' .. (day - retention))
end

return {0, created}
