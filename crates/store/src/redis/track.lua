-- Counts a batch of events of one experiment, in order, atomically: caps,
-- dedupe, counters and daily counters.
--
-- Key names come from keys.rs (the key layout), never from this script:
-- KEYS are the experiment's fixed keys, in the order of TRACK_KEYS in
-- track.rs: 1 variants (set), 2 goals (set), 3 counter slots (hash),
-- 4 totals (string), 5 values (string), 6 registry (hash), 7 dedupe
-- meta (hash), 8 days (zset), 9 memberships (hash), 10 fence (string),
-- 11 segments (hash).
-- They share one hash slot, so the script
-- runs unchanged on a Redis Cluster; so do the keys it names from the
-- prefixes in ARGV 7 and 8.
--
-- ARGV: 1 window in ms (0 = forever), 2 max variants, 3 max goals,
--       4 daily retention in days, 5 now in Unix ms from a manual clock
--       (tests), or empty to read the server's TIME, 6 registration mode
--       (1 = required), 7 the prefix of the daily counters' keys (the
--       day number follows), 8 the prefix of the dedupe shards' keys
--       (`<bucket>:<shard>` follows), 9 the version of a record that has
--       none stored (the first), 10 the most values a dimension of the
--       experiment holds, `other` included (segments); then 10 per event: the registration
--       number a creation is allowed with (0: may not create; see
--       register.rs), event, variant, is_goal (0/1), digest (8 binary bytes of the
--       dedupe key), the value's limbs (six integers below 10^9 separated
--       by spaces, see src/value.rs) or empty for an event without a value,
--       then for a join (Sixpack's participation or conversion; empty
--       otherwise): the member, the participant that must hold the event's
--       variant, and the definition (a record as JSON) that registers an
--       experiment without an owner's record; last the segment:
--       `dimension \x1f value` pairs joined by `\x1e`, or empty.
-- Returns {created, code...}: created = 1 when this call created the
-- experiment; one code per event: 0 counted, 1 duplicate, 2 variants cap,
-- 3 goals cap, 4 experiment unknown here (register it, then send the event
-- again with the registration's number; also when the number is not above
-- the fence: a take-back found no experiment after that registration), 5 paused, 6 stopped, 7 archived,
-- 8 unregistered (required mode), 9 the member has joined already (nothing
-- written), 10 the participant does not hold the variant (nothing written).
--
-- Joins: a member joins with the event's variant only when the event is
-- counted (code 0), in the same call, so a participation is whole or not
-- at all; a duplicate or ignored event writes no membership. The first
-- counted join with a definition writes the record unless an owner's
-- record is there (the `record` field), keeping the status.
--
-- The registry: the registry hash holds the experiment's status (and its
-- record, which only `registry.rs` reads). Only a running experiment
-- counts; one without a status counts in open mode, and its first counted
-- event writes the status `running` with the time, atomically with the
-- count. In required mode an event counts only when its experiment has a
-- status and its variant and goal are known (in the variants and goals
-- sets, which a registration fills).
--
-- All or nothing: Redis does not roll a script back when it fails midway
-- (what it wrote before the error stays), so the script runs in two
-- phases. Phase 1 reads every key whose content decides a code without
-- being written by the dedupe step (the meta hash, the registry status,
-- the counter slots, the variants and goals sets, the fence, with their
-- types checked); an error there (WRONGTYPE, a Lua error) leaves Redis as
-- it was. Phase 2 decides the
-- codes in order and writes, with commands that no input can make fail:
-- every variadic command goes through `chunked` (Lua's `unpack` fails past
-- ~8,000 values; track.rs also caps a call at 256 events), and the keys it
-- touches without reading them first are ones only this script creates
-- (dedupe shards, counter strings, days). The dedupe check itself is the
-- write that remembers the digest (HSETNX looks up and inserts in one
-- command): a separate read first would add one command per new event
-- (measured: 26 instead of 17 commands for a typical call of 10 events,
-- about 1.8 times the Redis time).
--
-- Out of memory (`maxmemory` reached under `noeviction`): Redis 6 and 7
-- run a script without flags (this one: a `#!lua` line would need Redis 7)
-- even when over the limit, and refuse its first write that may grow
-- memory with OOM, which ends the script; once a script has written, its
-- later writes are allowed (Redis never stops one midway). Only a script
-- with flags is refused before it runs. Phase 2 starts with such a write
-- (HSETNX or HSET of a dedupe shard), so under OOM a call changes nothing
-- and answers the error (503): checked by the test
-- `out_of_memory_changes_nothing` in track.rs.
--
-- Redis time is what limits throughput, and it grows with the number of
-- commands, so the script spends few: per batch a handful (time, the meta
-- hash, the slots of the batch's counters, two BITFIELDs that add to every
-- counter at once), per new event one or two.

local vkey, gkey, fkey, ckey, nkey, rkey, mkey, days_key, xkey, tkey, sgkey = unpack(KEYS)
local window, max_variants = tonumber(ARGV[1]), tonumber(ARGV[2])
local max_goals, retention = tonumber(ARGV[3]), tonumber(ARGV[4])
local manual_now = tonumber(ARGV[5])
local required = ARGV[6] == '1'
local day_prefix, shard_prefix = ARGV[7], ARGV[8]
local first_version = tonumber(ARGV[9])
local max_segment_values = tonumber(ARGV[10])
local FIRST_EVENT, STRIDE = 11, 10
local INACTIVE = {paused = 5, stopped = 6, archived = 7}
local UNREGISTERED, HELD, NOT_PARTICIPATING = 8, 9, 10

local call = redis.call
local floor = math.floor

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

-- ============================ Phase 1: reads ============================

-- Server time, so every instance sharing this Redis uses the same clock;
-- or the manual clock's time in tests. Everything below (window buckets,
-- the day) follows `now`.
local now = manual_now
if not now then
  local t = call('TIME')
  now = tonumber(t[1]) * 1000 + floor(tonumber(t[2]) / 1000)
end
local day = floor(now / 86400000)

-- The registry status: false when the experiment has none.
local status = call('HGET', rkey, 'status')
local inactive = status and status ~= 'running' and (INACTIVE[status] or INACTIVE.paused)

-- Dedupe memory. Time is cut into buckets one window long: a sighting in
-- the current bucket is always inside the window, one in the previous
-- bucket is compared with now - window, older buckets have expired. A
-- bucket is a set of small hashes ("shards") whose fields are 8-byte
-- digests and whose values are the first-seen time as an offset into the
-- bucket. The shards grow by linear hashing as the bucket fills, ~40
-- entries each, so each stays in Redis's compact listpack encoding and a
-- lookup reads exactly one shard per bucket. The meta hash holds, per
-- live bucket, how many insertions were tried (its shard count follows),
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
local n_cur_before = n_cur
local cur_prefix = shard_prefix .. cur .. ':'

-- A new bucket forgets the buckets before the previous one (read here, so
-- phase 2 only writes).
local old_buckets = {}
if n_cur == 0 and prev then
  for _, bucket in ipairs(call('HKEYS', mkey)) do
    local b = tonumber(bucket)
    if b and b < prev then
      old_buckets[#old_buckets + 1] = bucket
    end
  end
end

-- Memberships of the joins: what each member and participant holds
-- (false: nothing), and whether an owner's record is there.
local holds, has_record = {}, nil
for i = FIRST_EVENT, #ARGV, STRIDE do
  for _, m in ipairs({ARGV[i + 6], ARGV[i + 7]}) do
    if m ~= '' and holds[m] == nil then
      holds[m] = call('HGET', xkey, m)
    end
  end
  if ARGV[i + 8] ~= '' and has_record == nil then
    has_record = call('HEXISTS', rkey, 'record') == 1
  end
end

-- Counters: the field `event \x1f variant` has a slot number in the slots
-- hash; the counts are 64-bit integers at that slot in the strings of the
-- totals and of the day (per UTC day). A field with a slot has been counted, so its
-- variant and goal are known.
local fields, slot_of = {}, {}
for i = FIRST_EVENT, #ARGV, STRIDE do
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

-- What the caps of fields without a slot need (rare: a field's first
-- events): which of their variants and goals are known, how many there
-- are, and the next free counter slot.
local is_variant, is_goal_name = {}, {}
local variant_count, goal_count, next_slot = nil, nil, nil
for i = FIRST_EVENT, #ARGV, STRIDE do
  local event, variant = ARGV[i + 1], ARGV[i + 2]
  if not slot_of[event .. '\31' .. variant] then
    if is_variant[variant] == nil then
      is_variant[variant] = call('SISMEMBER', vkey, variant) == 1
    end
    if ARGV[i + 3] == '1' and is_goal_name[event] == nil then
      is_goal_name[event] = call('SISMEMBER', gkey, event) == 1
      goal_count = goal_count or call('SCARD', gkey)
    end
    -- An empty set does not exist: no variant, no experiment.
    variant_count = variant_count or call('SCARD', vkey)
    next_slot = next_slot or call('HLEN', fkey)
  end
end
-- Segments: the pairs of the batch's events, and which of their values
-- the experiment holds (`h` fields) and how many named values each of
-- their dimensions holds (`n` fields), for the cap: a new named value
-- past `max_segment_values - 1` counts as `other`.
local segments_of, segment_fields, segment_known = {}, {}, {}
for i = FIRST_EVENT, #ARGV, STRIDE do
  local text = ARGV[i + 9]
  if text ~= '' then
    local pairs_of = {}
    for pair in string.gmatch(text, '[^\30]+') do
      local dimension, value = string.match(pair, '^([^\31]*)\31(.*)$')
      pairs_of[#pairs_of + 1] = {dimension, value}
      for _, f in ipairs({'h\31' .. pair, 'n\31' .. dimension}) do
        if segment_known[f] == nil then
          segment_known[f] = false
          segment_fields[#segment_fields + 1] = f
        end
      end
    end
    segments_of[i] = pairs_of
  end
end
if #segment_fields > 0 then
  local found = chunked('HMGET', sgkey, segment_fields, 1)
  for k, f in ipairs(segment_fields) do
    segment_known[f] = found[k] or false
  end
end

-- Registrations numbered up to the fence may not create the experiment.
local fence = 0
if variant_count == 0 then
  fence = tonumber(call('GET', tkey)) or 0
end

-- ================== Phase 2: decisions, dedupe, writes ==================

-- Expiry only reclaims memory: a lookup reads the current and previous
-- buckets only and compares stored times with `now`, so the window never
-- depends on a key expiring. With a manual clock the dedupe memory gets no
-- expiry, since Redis expires keys on its own clock, which could remove a
-- bucket the manual clock still reads (test servers are thrown away).
local expire_at = nil
if window > 0 and not manual_now then
  expire_at = (cur + 2) * window + 1000
end

local function shard_count(n)
  if n <= PER_SHARD then
    return 1
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

-- Every shard holds the placeholder field '' from its creation on, so it
-- never empties (a split may move all its digests away) and is never
-- re-created without its expiry.
local function create_shard(key, entries)
  local list = {'', ''}
  for _, e in ipairs(entries) do
    list[#list + 1] = e
  end
  chunked('HSET', key, list, 2)
  if expire_at then
    call('PEXPIREAT', key, expire_at)
  end
end

-- Adds shard s to the current bucket: the digests of shard s - 2^L that
-- now belong to s move there (written before they are deleted, so that a
-- split's first write is an HSET, which Redis refuses under OOM).
local function split(s)
  local m = low_power(s)
  local from = cur_prefix .. (s - m)
  local entries = call('HGETALL', from)
  local moved, names = {}, {}
  for i = 1, #entries, 2 do
    local digest = entries[i]
    if digest ~= '' and hash_of(digest) % (2 * m) == s then
      moved[#moved + 1] = digest
      moved[#moved + 1] = entries[i + 1]
      names[#names + 1] = digest
    end
  end
  create_shard(cur_prefix .. s, moved)
  chunked('HDEL', from, names, 1)
end

-- Returns true when the digest was seen within the window, else remembers
-- it in the current bucket. The insertion is tried first (HSETNX looks up
-- and inserts in one command) and taken back in the rare case that the
-- previous bucket holds a sighting still inside the window.
local value = '1'
if window > 0 then
  value = tostring(now - cur * window)
end

local function seen_before(digest)
  local h = hash_of(digest)
  n_cur = n_cur + 1
  local shards = shard_count(n_cur)
  local key = cur_prefix .. shard_of(h, shards)
  if n_cur == 1 then
    create_shard(key, {digest, value})
  else
    if shards > shard_count(n_cur - 1) then
      split(shards - 1)
    end
    if call('HSETNX', key, digest, value) == 0 then
      return true
    end
  end
  if n_prev > 0 then
    local offset = call('HGET', shard_prefix .. prev .. ':' .. shard_of(h, shard_count(n_prev)), digest)
    -- Exact window: a duplicate only while the first sighting is less than
    -- `window` ms old. A duplicate never refreshes it.
    if offset and prev * window + tonumber(offset) > now - window then
      call('HDEL', key, digest)
      return true
    end
  end
  return false
end

-- Caps for a field without a slot, in order within the batch: a variant
-- or goal first counted in this batch counts towards the cap for the
-- events after it. Returns the code, and whether counting the event
-- creates the experiment.
local function check_caps(number, event, variant, is_goal)
  local creates = false
  if not is_variant[variant] then
    if variant_count == 0 then
      if tonumber(number) <= fence then
        return 4, false
      end
      creates = true
    end
    if variant_count >= max_variants then
      return 2, false
    end
  end
  if is_goal and not is_goal_name[event] and goal_count >= max_goals then
    return 3, false
  end
  return 0, creates
end

-- Values: each counted event's limbs are added, per limb, into the i64 at
-- `#(slot * 6 + limb)` of the values string. A batch adds at most 256 limbs
-- below 10^9 to one place, which a double holds exactly.
local LIMBS = 6
local value_increments, valued = {}, {}
local function add_value(slot, limbs)
  local place = slot * LIMBS
  local k = 0
  for limb in string.gmatch(limbs, '%d+') do
    local at = place + k
    if not value_increments[at] then
      value_increments[at] = 0
      valued[#valued + 1] = at
    end
    value_increments[at] = value_increments[at] + tonumber(limb)
    k = k + 1
  end
end

-- Segment counters: each counted event adds to the counter of each of its
-- pairs (`c` field) and its value's limbs (`v<k>` fields), on the value
-- the cap leaves it.
local segment_increments, segment_counted, segment_new = {}, {}, {}
local function add_segment(field, by)
  if not segment_increments[field] then
    segment_increments[field] = 0
    segment_counted[#segment_counted + 1] = field
  end
  segment_increments[field] = segment_increments[field] + by
end
local function count_segments(i, event, variant)
  for _, pair in ipairs(segments_of[i] or {}) do
    local dimension, value = pair[1], pair[2]
    local held = 'h\31' .. dimension .. '\31' .. value
    if value ~= 'other' and not segment_known[held] then
      local named = tonumber(segment_known['n\31' .. dimension]) or 0
      if named >= max_segment_values - 1 then
        value = 'other'
      else
        segment_known[held] = '1'
        segment_known['n\31' .. dimension] = named + 1
        segment_new[#segment_new + 1] = held
        segment_new[#segment_new + 1] = '1'
        segment_new[#segment_new + 1] = 'n\31' .. dimension
        segment_new[#segment_new + 1] = named + 1
      end
    end
    local id = dimension .. '\31' .. value .. '\31' .. event .. '\31' .. variant
    add_segment('c\31' .. id, 1)
    if ARGV[i + 5] ~= '' then
      local k = 0
      for limb in string.gmatch(ARGV[i + 5], '%d+') do
        add_segment('v' .. k .. '\31' .. id, tonumber(limb))
        k = k + 1
      end
    end
  end
end

local answer = {0}
local increments, counted = {}, {}
local new_variants, new_goals, new_fields = {}, {}, {}
local joined, definition = {}, nil
for i = FIRST_EVENT, #ARGV, STRIDE do
  local number, event, variant = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local is_goal, digest = ARGV[i + 3] == '1', ARGV[i + 4]
  local field = event .. '\31' .. variant
  local member, participant = ARGV[i + 6], ARGV[i + 7]
  local code, creates = 0, false
  if member ~= '' and holds[member] then
    code = HELD
  elseif participant ~= '' and holds[participant] ~= variant then
    code = NOT_PARTICIPATING
  elseif inactive then
    code = inactive
  elseif required and (not status or (not slot_of[field]
      and (not is_variant[variant] or (is_goal and not is_goal_name[event])))) then
    code = UNREGISTERED
  elseif not slot_of[field] then
    code, creates = check_caps(number, event, variant, is_goal)
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
    if ARGV[i + 5] ~= '' then
      add_value(slot, ARGV[i + 5])
    end
    count_segments(i, event, variant)
    if member ~= '' then
      holds[member] = variant
      joined[#joined + 1] = member
      joined[#joined + 1] = variant
    end
    if ARGV[i + 8] ~= '' and not has_record then
      definition, has_record = ARGV[i + 8], true
    end
  end
  answer[#answer + 1] = code
end

-- The first counted event of an experiment without a status registers it.
if not status and #counted > 0 then
  call('HSET', rkey, 'status', 'running', 'created', now)
end

chunked('HSET', xkey, joined, 2)
-- A definition's names become known, as an owner's record's do.
if definition then
  local version = tonumber(call('HGET', rkey, 'version')) or first_version
  call('HSET', rkey, 'record', definition, 'version', version + 1)
  local record = cjson.decode(definition)
  for _, v in ipairs(record.variants or {}) do
    new_variants[#new_variants + 1] = v.name
  end
  for _, g in ipairs(record.goals or {}) do
    new_goals[#new_goals + 1] = g.name
  end
end

chunked('SADD', vkey, new_variants, 1)
chunked('SADD', gkey, new_goals, 1)
chunked('HSET', fkey, new_fields, 2)

if n_cur ~= n_cur_before then
  call('HSET', mkey, cur, n_cur)
  if n_cur_before == 0 and prev then
    chunked('HDEL', mkey, old_buckets, 1)
    if expire_at then
      call('PEXPIREAT', mkey, expire_at)
    end
  end
end

-- The BITFIELD arguments that add `increments[place]` to the i64 at each
-- of `places` (integers below 2^53, printed without an exponent).
local function additions(places, increments)
  local add = {}
  for _, place in ipairs(places) do
    add[#add + 1] = 'INCRBY'
    add[#add + 1] = 'i64'
    add[#add + 1] = '#' .. place
    add[#add + 1] = string.format('%d', increments[place])
  end
  return add
end

if #counted > 0 then
  local add = additions(counted, increments)
  chunked('BITFIELD', ckey, add, 4)
  local day_key = day_prefix .. day
  chunked('BITFIELD', day_key, add, 4)
  -- Daily counters are listed in a sorted set and forgotten after the
  -- retention; that bookkeeping runs once per day. The expiry is relative
  -- (the same as an absolute one on server time), so a manual clock far
  -- from Redis's does not expire the day at once.
  if tonumber(meta[3]) ~= day then
    call('PEXPIRE', day_key, (day + 1 + retention) * 86400000 - now)
    call('ZADD', days_key, day, day)
    call('ZREMRANGEBYSCORE', days_key, '-inf', '(' .. (day - retention))
    call('HSET', mkey, 'day', day)
  end
end

if #valued > 0 then
  chunked('BITFIELD', nkey, additions(valued, value_increments), 4)
end

-- The held values' later fields overwrite their earlier ones (the last
-- `n` count is the highest).
chunked('HSET', sgkey, segment_new, 2)
for _, field in ipairs(segment_counted) do
  call('HINCRBY', sgkey, field, string.format('%d', segment_increments[field]))
end

return answer
