-- Writes or removes one alert-state document under a precondition, in one
-- step (see alerts.rs). KEYS[1]: the alerts hash. ARGV: the field, the
-- precondition ("any", "absent" or "version"), the expected version, "1"
-- to write or "0" to remove, and the document.
-- Each field holds "<version>:<document>".
-- Answers {1, new version} (0 for a removal), or {0, current version}
-- (-1 when there is none) when the precondition failed.
local held = redis.call('HGET', KEYS[1], ARGV[1])
local current = -1
if held then
  current = tonumber(string.match(held, '^(%d+):'))
end
if ARGV[2] == 'absent' and current ~= -1 then
  return {0, current}
end
if ARGV[2] == 'version' and current ~= tonumber(ARGV[3]) then
  return {0, current}
end
if ARGV[4] == '0' then
  redis.call('HDEL', KEYS[1], ARGV[1])
  return {1, 0}
end
local version = 1
if current ~= -1 then
  version = current + 1
end
redis.call('HSET', KEYS[1], ARGV[1], version .. ':' .. ARGV[5])
return {1, version}
