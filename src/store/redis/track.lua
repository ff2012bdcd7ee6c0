-- Counts a batch of events of one experiment, in order, atomically: caps,
-- dedupe, counters and daily counters.
--
-- Every key is derived from KEYS[1] = "<prefix>:{<tag>}", so all of them
-- share one hash slot and the script runs unchanged on a Redis Cluster.
--
-- ARGV: 1 window in ms (0 = forever), 2 max variants, 3 max goals,
--       4 daily retention in days, 5 now in Unix ms from a manual clock
--       (tests), or empty to read the server's TIME; then 5 per event:
--       may_create (0/1), event, variant, is_goal (0/1), digest (8 binary
--       bytes of the dedupe key).
-- Returns {created, code...}: created = 1 when this call created the
-- experiment; one code per event: 0 counted, 1 duplicate, 2 variants cap,
-- 3 goals cap, 4 experiment unknown here (register it, then send the event
-- again with may_create = 1).
--
-- All or nothing: Redis does not roll a script back when it fails midway
-- (what it wrote before the error stays), so the script runs in two
-- phases. Phase 1 only reads and decides every event's code; phase 2 only
-- writes what phase 1 decided, with commands that cannot fail on any
-- input: each key it writes was read in phase 1 with its type checked, or
-- is one only this script creates (counter strings, days, new shards), and
-- every variadic command goes through `chunked` (Lua's `unpack` fails past
-- ~8,000 values; track.rs also caps a call at 256 events). An error in
-- phase 1 (WRONGTYPE, a Lua error) leaves Redis as it was.
--
-- Out of memory (`maxmemory` reached under `noeviction`): Redis 6 and 7
-- run a script without flags (this one: a `#!lua` line would need Redis 7)
-- even when over the limit, and refuse its first write that may grow
-- memory with OOM, which ends the script; once a script has written, its
-- later writes are allowed (Redis never stops one midway). Only a script
-- with flags is refused before it runs. Phase 2
-- starts with such a write (an HSET of a dedupe shard), so under OOM a call
-- changes nothing and answers the error (503): checked by the test
-- `out_of_memory_changes_nothing` in track.rs. A batch of duplicates only
-- writes nothing and is answered.
--
-- Redis time is what limits throughput, and it grows with the number of
-- commands, so the script spends few: per batch a handful (time, the meta
-- hash, the slots of the batch's counters, one HSET per dedupe shard
-- touched, two BITFIELDs that add to every counter at once), per new event
-- one or two reads (its shard in the current and previous buckets, grouped
-- per shard).

local base = KEYS[1]
local window, max_variants = tonumber(ARGV[1]), tonumber(ARGV[2])
local max_goals, retention = tonumber(ARGV[3]), tonumber(ARGV[4])
local manual_now = tonumber(ARGV[5])
local FIRST_EVENT = 6

local call = redis.call
local floor = math.floor
local vkey, gkey, fkey, mkey = base .. ':v', base .. ':g', base .. ':f', base .. ':m'

-- Calls `cmd key list...` with at most CHUNK values of `list` per call (a
-- multiple of `unit`, for field/value pairs), so `unpack` stays far under
-- Lua's limit whatever the batch. Returns the replies joined.
local CHUNK = 1000
local function chunked(cmd, key, list, unit)
  local replies = {}
  local step = CHUNK - CHUNK % unit
  for first = 1, #list, step do
    local reply = call(cmd, key, unpack(list, first, math.min(first + step - 1, #list)))
    if type(reply) == 'table' then
      for _, r in ipairs(reply) do
        replies[#replies + 1] = r
      end
    end
  end
  return replies
end

-- ===================== Phase 1: reads and decisions =====================

-- Server time, so every instance sharing this Redis uses the same clock;
-- or the manual clock's time in tests. Everything below (window buckets,
-- the day) follows `now`.
local now = manual_now
if not now then
  local t = call('TIME')
  now = tonumber(t[1]) * 1000 + floor(tonumber(t[2]) / 1000)
end
local day = floor(now / 86400000)

-- Dedupe memory. Time is cut into buckets one window long: a sighting in
-- the current bucket is always inside the window, one in the previous
-- bucket is compared with now - window, older buckets have expired. A
-- bucket is a set of small hashes ("shards") whose fields are 8-byte
-- digests and whose values are the first-seen time as an offset into the
-- bucket. The shards grow by linear hashing as the bucket fills, ~40
-- entries each, so each stays in Redis's compact listpack encoding and a
-- lookup reads exactly one shard per bucket. The meta hash `:m` holds, per
-- live bucket, how many digests were added (its shard count follows),
-- and the last day counted.
local PER_SHARD = 40
local cur, prev = 0, nil
if window > 0 then
  cur = floor(now / window)
  prev = cur - 1
end
local meta = call('HMGET', mkey, cur, prev or cur, 'day')
local n_cur, n_prev = tonumber(meta[1]) or 0, 0
if prev then
  n_prev = tonumber(meta[2]) or 0
end
local cur_prefix = base .. ':s:' .. cur .. ':'
local prev_prefix = prev and (base .. ':s:' .. prev .. ':')
-- Expiry only reclaims memory: a lookup reads the current and previous
-- buckets only and compares stored times with `now`, so the window never
-- depends on a key expiring. With a manual clock the dedupe memory gets no
-- expiry, since Redis expires keys on its own clock, which could remove a
-- bucket the manual clock still reads (test servers are thrown away).
local expire_at = nil
if window > 0 and not manual_now then
  expire_at = (cur + 2) * window + 1000
end

-- Shards of a bucket holding n digests (none while empty).
local function shard_count(n)
  if n == 0 then
    return 0
  end
  return math.ceil(n / PER_SHARD)
end

-- Linear hashing: with s shards and 2^L <= s < 2^(L+1), a digest lives in
-- shard h mod 2^(L+1), or h mod 2^L when that shard is not split yet.
local function low_power(s)
  local m = 1
  while m * 2 <= s do
    m = m * 2
  end
  return m
end

local function shard_of(h, s)
  local m = low_power(s)
  local i = h % (2 * m)
  if i >= s then
    i = h % m
  end
  return i
end

local function hash_of(digest)
  local b1, b2, b3, b4 = string.byte(digest, 1, 4)
  return ((b1 * 256 + b2) * 256 + b3) * 256 + b4
end

-- Reads the values of `digests` in a bucket of `shards` shards: one HMGET
-- per shard touched. Returns digest -> value (absent when not there).
local function lookup(prefix, shards, digests)
  local found = {}
  if shards == 0 then
    return found
  end
  local per_shard, order = {}, {}
  for _, digest in ipairs(digests) do
    local s = shard_of(hash_of(digest), shards)
    if not per_shard[s] then
      per_shard[s] = {}
      order[#order + 1] = s
    end
    table.insert(per_shard[s], digest)
  end
  for _, s in ipairs(order) do
    local values = chunked('HMGET', prefix .. s, per_shard[s], 1)
    for i, digest in ipairs(per_shard[s]) do
      if values[i] then
        found[digest] = values[i]
      end
    end
  end
  return found
end

local value = '1'
if window > 0 then
  value = tostring(now - cur * window)
end

-- Sightings of the batch's digests: the current bucket for all, the
-- previous one for those not in the current one.
local digests, listed = {}, {}
for i = FIRST_EVENT, #ARGV, 5 do
  local digest = ARGV[i + 4]
  if not listed[digest] then
    listed[digest] = true
    digests[#digests + 1] = digest
  end
end
local in_cur = lookup(cur_prefix, shard_count(n_cur), digests)
local in_prev = {}
if n_prev > 0 then
  local absent = {}
  for _, digest in ipairs(digests) do
    if not in_cur[digest] then
      absent[#absent + 1] = digest
    end
  end
  in_prev = lookup(prev_prefix, shard_count(n_prev), absent)
end

-- True when the digest was seen within the window (or earlier in this
-- batch); else it is remembered as new.
local new_digests, batch_seen = {}, {}
local function seen_before(digest)
  if batch_seen[digest] or in_cur[digest] then
    return true
  end
  local offset = in_prev[digest]
  -- Exact window: a duplicate only while the first sighting is less than
  -- `window` ms old. A duplicate never refreshes it.
  if offset and prev * window + tonumber(offset) > now - window then
    return true
  end
  batch_seen[digest] = true
  new_digests[#new_digests + 1] = digest
  return false
end

-- Counters: the field `event \x1f variant` has a slot number in `:f`; the
-- counts are 64-bit integers at that slot in the strings `:c` (totals) and
-- `:d:<day>` (per UTC day). A field with a slot has been counted, so its
-- variant and goal are known.
local fields, slot_of = {}, {}
for i = FIRST_EVENT, #ARGV, 5 do
  local field = ARGV[i + 1] .. '\31' .. ARGV[i + 2]
  if slot_of[field] == nil then
    slot_of[field] = false
    fields[#fields + 1] = field
  end
end
local slots = chunked('HMGET', fkey, fields, 1)
for i, field in ipairs(fields) do
  slot_of[field] = slots[i] and tonumber(slots[i]) or false
end
local next_slot = nil

-- Caps for a field without a slot, in order within the batch: a variant
-- or goal first counted in this batch counts towards the cap for the
-- events after it. Sets are read once (membership per name, size per
-- batch) and what this batch adds is kept here. Returns the code, and
-- whether counting the event creates the experiment.
local is_variant, is_goal_name = {}, {}
local variant_count, goal_count = nil, nil
local new_variants, new_goals = {}, {}
local function member(known, key, name)
  if known[name] == nil then
    known[name] = call('SISMEMBER', key, name) == 1
  end
  return known[name]
end
local function check_caps(may_create, event, variant, is_goal)
  local creates = false
  if not member(is_variant, vkey, variant) then
    variant_count = variant_count or call('SCARD', vkey)
    -- An empty set does not exist: no variant, no experiment.
    if variant_count == 0 then
      if may_create ~= '1' then
        return 4, false
      end
      creates = true
    end
    if variant_count >= max_variants then
      return 2, false
    end
  end
  if is_goal and not member(is_goal_name, gkey, event) then
    goal_count = goal_count or call('SCARD', gkey)
    if goal_count >= max_goals then
      return 3, false
    end
  end
  return 0, creates
end

local answer = {0}
local increments, counted, new_fields = {}, {}, {}
for i = FIRST_EVENT, #ARGV, 5 do
  local may_create, event, variant = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local is_goal, digest = ARGV[i + 3] == '1', ARGV[i + 4]
  local field = event .. '\31' .. variant
  local code, creates = 0, false
  if not slot_of[field] then
    code, creates = check_caps(may_create, event, variant, is_goal)
  end
  if code == 0 and seen_before(digest) then
    code = 1
  end
  if code == 0 then
    if creates then
      answer[1] = 1
    end
    local slot = slot_of[field]
    if not slot then
      if not is_variant[variant] then
        is_variant[variant] = true
        variant_count = variant_count + 1
        new_variants[#new_variants + 1] = variant
      end
      if is_goal and not is_goal_name[event] then
        is_goal_name[event] = true
        goal_count = goal_count + 1
        new_goals[#new_goals + 1] = event
      end
      next_slot = next_slot or call('HLEN', fkey)
      slot = next_slot
      next_slot = next_slot + 1
      new_fields[#new_fields + 1] = field
      new_fields[#new_fields + 1] = slot
      slot_of[field] = slot
    end
    if not increments[slot] then
      increments[slot] = 0
      counted[#counted + 1] = slot
    end
    increments[slot] = increments[slot] + 1
  end
  answer[#answer + 1] = code
end

-- Where the new digests go: the bucket grows from `shards_before` to
-- `shards_after` shards, and each new shard takes the digests of the one
-- it splits from (s - 2^L) that now belong to it. Those source shards are
-- read here; a digest always lives in shard_of(h, current count).
local n_before = n_cur
n_cur = n_cur + #new_digests
local shards_before, shards_after = shard_count(n_before), shard_count(n_cur)
local writes, targets = {}, {} -- shard -> {field, value, ...}
local function put(s, digest, v)
  if not writes[s] then
    writes[s] = {}
    targets[#targets + 1] = s
  end
  local w = writes[s]
  w[#w + 1] = digest
  w[#w + 1] = v
end
-- Every shard holds the placeholder field '' from its creation on, so it
-- never empties (a split may move all its digests away) and is never
-- re-created without its expiry.
for s = shards_before, shards_after - 1 do
  put(s, '', '')
end
local moved_from, sources = {}, {} -- source shard -> digests leaving it
for s = shards_before, shards_after - 1 do
  local source = s - low_power(s)
  if source < shards_before and not moved_from[source] then
    moved_from[source] = {}
    sources[#sources + 1] = source
    local entries = call('HGETALL', cur_prefix .. source)
    for i = 1, #entries, 2 do
      local digest = entries[i]
      if digest ~= '' and shard_of(hash_of(digest), shards_after) ~= source then
        put(shard_of(hash_of(digest), shards_after), digest, entries[i + 1])
        table.insert(moved_from[source], digest)
      end
    end
  end
end
for _, digest in ipairs(new_digests) do
  put(shard_of(hash_of(digest), shards_after), digest, value)
end

-- A new bucket: the buckets before the previous one are forgotten.
local old_buckets = {}
if #new_digests > 0 and n_before == 0 and prev then
  for _, bucket in ipairs(call('HKEYS', mkey)) do
    local b = tonumber(bucket)
    if b and b < prev then
      old_buckets[#old_buckets + 1] = bucket
    end
  end
end

-- ===================== Phase 2: writes only =====================
-- Nothing is written for a batch of duplicates and refused events. The
-- first write is an HSET (refused under OOM before anything changed).

for _, s in ipairs(targets) do
  chunked('HSET', cur_prefix .. s, writes[s], 2)
  if expire_at and s >= shards_before then
    call('PEXPIREAT', cur_prefix .. s, expire_at)
  end
end
for _, source in ipairs(sources) do
  if #moved_from[source] > 0 then
    chunked('HDEL', cur_prefix .. source, moved_from[source], 1)
  end
end

local meta_update = {}
if #new_digests > 0 then
  meta_update = {cur, n_cur}
  if #old_buckets > 0 then
    chunked('HDEL', mkey, old_buckets, 1)
  end
end

if #new_variants > 0 then
  chunked('SADD', vkey, new_variants, 1)
end
if #new_goals > 0 then
  chunked('SADD', gkey, new_goals, 1)
end
if #new_fields > 0 then
  chunked('HSET', fkey, new_fields, 2)
end

if #counted > 0 then
  local add = {}
  for _, slot in ipairs(counted) do
    add[#add + 1] = 'INCRBY'
    add[#add + 1] = 'i64'
    add[#add + 1] = '#' .. slot
    add[#add + 1] = increments[slot]
  end
  chunked('BITFIELD', base .. ':c', add, 4)
  local day_key = base .. ':d:' .. day
  chunked('BITFIELD', day_key, add, 4)
  -- Daily counters are listed in a sorted set and forgotten after the
  -- retention; that bookkeeping runs once per day. The expiry is relative
  -- (the same as an absolute one on server time), so a manual clock far
  -- from Redis's does not expire the day at once.
  if tonumber(meta[3]) ~= day then
    call('PEXPIRE', day_key, (day + 1 + retention) * 86400000 - now)
    call('ZADD', base .. ':days', day, day)
    call('ZREMRANGEBYSCORE', base .. ':days', '-inf', '(' .. (day - retention))
    meta_update[#meta_update + 1] = 'day'
    meta_update[#meta_update + 1] = day
  end
end

if #meta_update > 0 then
  call('HSET', mkey, unpack(meta_update))
  if n_before == 0 and prev and expire_at then
    call('PEXPIREAT', mkey, expire_at)
  end
end

return answer
