"""The ranking index's Lua scripts (leaderboard/index.py sends them, and its docstring
describes the keys they name). One round trip each; every read and write checks `ready`
in the same call as the data."""

# The index version never goes backwards, whatever Redis lost: every change sets it to
# max(v + 1, the Redis clock in microseconds), so a version counted again from zero (a
# flush) or from an older snapshot (a restart) starts above every version handed out
# before (at most one change per microsecond keeps it at the clock). Lua numbers are
# doubles: exact to 2**53, the year 2255 in microseconds; written with '%.0f' because
# Redis formats a Lua number with 14 digits.
_BUMP = """
local function clock_us()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local function bump(key, floor)
  local v = tonumber(redis.call('GET', key) or '0')
  local now = math.max(clock_us(), floor or 0)
  if v < now then v = now else v = v + 1 end
  local text = string.format('%.0f', v)
  redis.call('SET', key, text)
  return text
end
"""

# Sets one user's entry in one generation, unless it holds a newer ledger entry.
_PUT = """
local function suffix_of(field, buckets)
  local n = string.byte(field, 15) * 256 + string.byte(field, 16)
  return string.format('%04x', n % (tonumber(buckets) or 65536))
end
local function put(generations, gen, field, score, at, entry, name, ranked, buckets)
  local z = generations .. gen .. ':z'
  local suffix = suffix_of(field, buckets)
  local bucket = generations .. gen .. ':n:' .. suffix
  local old = redis.call('HGET', bucket, field)
  if old then
    if entry < struct.unpack('>I8', old, 9) then return 0 end
    redis.call('ZREM', z, string.sub(old, 1, 8) .. field)
  end
  if ranked == '1' then redis.call('ZADD', z, score, at .. field) end
  redis.call('HSET', bucket, field, at .. struct.pack('>I8', entry) .. name)
  return 1
end
"""

# While the index is cold or being rebuilt, a write is also kept in `pending` (the newest
# per user), which the rebuild applies in the same atomic step that makes it current:
# so a write that lands while a rebuild runs is never missing from the new generation.
APPLY = (
    _BUMP
    + _PUT
    + """
local entry = tonumber(ARGV[4])
local gen = redis.call('GET', KEYS[1])
if (not gen) or redis.call('EXISTS', KEYS[4]) == 1 then
  local held = redis.call('HGET', KEYS[5], ARGV[2])
  if (not held) or entry >= cmsgpack.unpack(held)[1] then
    redis.call('HSET', KEYS[5], ARGV[2], cmsgpack.pack({entry, ARGV[3], ARGV[5], ARGV[6], ARGV[7]}))
  end
end
if not gen then return {-1, -1} end
local applied = put(ARGV[1], gen, ARGV[2], ARGV[3], ARGV[5], entry, ARGV[6], ARGV[7], ARGV[12])
if applied == 1 then
  bump(KEYS[2])
  redis.call('SET', KEYS[3], ARGV[8], 'NX')
end
-- The user's rank as the index now holds it (0-based; -1 when not on the board), so a
-- write that needs the new rank costs no second round trip.
local suffix = suffix_of(ARGV[2], ARGV[12])
local held = redis.call('HGET', ARGV[1] .. gen .. ':n:' .. suffix, ARGV[2])
local z = ARGV[1] .. gen .. ':z'
local rank = held and redis.call('ZREVRANK', z, string.sub(held, 1, 8) .. ARGV[2])
-- The writer's after-commit messages, in this same round trip: wake the broadcasters
-- (ARGV[9]) and tell the user their score and rank (ARGV[10]: user id, newline, JSON).
if ARGV[9] and ARGV[9] ~= '' then redis.call('PUBLISH', ARGV[9], '') end
if ARGV[10] and ARGV[10] ~= '' then
  local shown = rank and tostring(rank + 1) or 'null'
  redis.call('PUBLISH', ARGV[10], ARGV[11] .. '\\n{"type":"me.update","score":' .. ARGV[3]
    .. ',"rank":' .. shown .. '}')
end
return {applied, rank or -1}
"""
)

# A page of the board, unless the caller already holds it: ARGV[4] is the tag of the
# copy the caller holds, and an unchanged board answers {2} instead of the page (see
# `PageMemory`). The tag is the generation, the version and the server's run_id: a
# Redis that restarted from an older snapshot (or a replica promoted in its place) runs
# under another run_id, so a tag from before never matches it (INFO costs Redis about
# 5 us). Such a Redis also holds an older version than the one readers were last told:
# the first read under a new run_id (`vrun` differs) bumps it past the clock, as it does
# when the version is below ARGV[5], the highest version this process answered while
# it read PostgreSQL instead (Redis down or cold).
_SUFFIX = """
local function suffix_of(field, buckets)
  local n = string.byte(field, 15) * 256 + string.byte(field, 16)
  return string.format('%04x', n % (tonumber(buckets) or 65536))
end
"""

PAGE = (
    _BUMP
    + _SUFFIX
    + """
local gen = redis.call('GET', KEYS[1])
if not gen then return {0} end
local version = redis.call('GET', KEYS[2]) or '0'
local server = string.match(redis.call('INFO', 'server'), 'run_id:(%w+)')
local floor = tonumber(ARGV[5])
if redis.call('GET', KEYS[3]) ~= server or tonumber(version) < floor then
  version = bump(KEYS[2], floor)
  redis.call('SET', KEYS[3], server)
end
local tag = gen .. ':' .. version .. ':' .. server
if tag == ARGV[4] then return {2} end
local z = ARGV[1] .. gen .. ':z'
local buckets = ARGV[1] .. gen .. ':n:'
local items = redis.call('ZREVRANGE', z, ARGV[2], ARGV[3], 'WITHSCORES')
local values = {}
for i = 1, #items, 2 do
  local field = string.sub(items[i], 9)
  local bucket = buckets .. suffix_of(field, ARGV[6])
  local value = redis.call('HGET', bucket, field)
  if not value then return {0} end
  values[#values + 1] = value
end
return {1, items, values, redis.call('ZCARD', z), version, tag}
"""
)

RANK = """
local gen = redis.call('GET', KEYS[1])
if not gen then return {0} end
local value = redis.call('HGET', ARGV[1] .. gen .. ':n:' .. ARGV[3], ARGV[2])
if not value then return {1} end
local z = ARGV[1] .. gen .. ':z'
local member = string.sub(value, 1, 8) .. ARGV[2]
local rank = redis.call('ZREVRANK', z, member)
if not rank then return {1} end
return {2, rank, redis.call('ZSCORE', z, member)}
"""

# Makes a fully built generation current, with the writes kept while it was built,
# unless its keys were lost meanwhile (the `building` mark is gone or names another
# generation, or the set is short): then the rebuild fails, and the next cold read
# starts another one.
PUBLISH = (
    _BUMP
    + _PUT
    + """
if redis.call('GET', KEYS[4]) ~= ARGV[2] then return false end
if redis.call('ZCARD', KEYS[6]) ~= tonumber(ARGV[3]) then return false end
local pending = redis.call('HGETALL', KEYS[5])
for i = 1, #pending, 2 do
  local w = cmsgpack.unpack(pending[i + 1])
  put(ARGV[1], ARGV[2], pending[i], w[2], w[3], w[1], w[4], w[5], ARGV[5])
end
local old = redis.call('GET', KEYS[1]) or ''
redis.call('SET', KEYS[1], ARGV[2])
redis.call('DEL', KEYS[4], KEYS[5])
bump(KEYS[2])
redis.call('SET', KEYS[3], ARGV[4], 'NX')
return old
"""
)

# Loads a batch of rows of a new generation: records of field (16 bytes), its bucket
# (4 hex digits), value head (inverted time and entry id, 16 bytes), score (1-byte
# length, decimal: exact in, the sorted set rounds past 2**53), username (2-byte length,
# UTF-8). One call per batch instead of two commands per user: the rebuild's cost is
# mostly per-command overhead. (Batches stay far below Lua's 8,000 `unpack` limit.)
LOAD = """
local blob, buckets, z = ARGV[2], ARGV[1], KEYS[1]
local pos, last, members = 1, #ARGV[2], {}
while pos <= last do
  local field = string.sub(blob, pos, pos + 15)
  local bucket = string.sub(blob, pos + 16, pos + 19)
  local head = string.sub(blob, pos + 20, pos + 35)
  local size = string.byte(blob, pos + 36)
  members[#members + 1] = string.sub(blob, pos + 37, pos + 36 + size)
  members[#members + 1] = string.sub(head, 1, 8) .. field
  pos = pos + 37 + size
  size = string.byte(blob, pos) * 256 + string.byte(blob, pos + 1)
  redis.call('HSET', buckets .. bucket, field, head .. string.sub(blob, pos + 2, pos + 1 + size))
  pos = pos + 2 + size
end
if #members > 0 then redis.call('ZADD', z, unpack(members)) end
return #members / 2
"""

RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""

# One entry applied to several indexes at once: the global board's and those of the
# periods it was credited to, all in one script, so every board moves or none does (the
# weekly and the all-time totals never drift apart). KEYS: five per index (ready, v,
# dirty, building, pending). ARGV: field, entry id, username, dirty time, wake channel,
# me channel, user id, the number of indexes, then six per index (generations prefix,
# score, inverted time, ranked '1'/'0', label: the start of its `boards` item in
# me.update, '' for the global index, which is first; and its number of buckets).
# Returns applied and rank (0-based, -1 when not on the board; applied -1 when that
# index is cold) per index.
APPLY_MANY = (
    _BUMP
    + _PUT
    + """
local field, entry, name = ARGV[1], tonumber(ARGV[2]), ARGV[3]
local count = tonumber(ARGV[8])
local out, boards = {}, {}
local global_score, global_rank = nil, 'null'
for i = 0, count - 1 do
  local k, a = i * 5, 9 + i * 6
  local generations, score, at = ARGV[a], ARGV[a + 1], ARGV[a + 2]
  local ranked, label, buckets = ARGV[a + 3], ARGV[a + 4], ARGV[a + 5]
  local suffix = suffix_of(field, buckets)
  local gen = redis.call('GET', KEYS[k + 1])
  if (not gen) or redis.call('EXISTS', KEYS[k + 4]) == 1 then
    local held = redis.call('HGET', KEYS[k + 5], field)
    if (not held) or entry >= cmsgpack.unpack(held)[1] then
      redis.call('HSET', KEYS[k + 5], field, cmsgpack.pack({entry, score, at, name, ranked}))
    end
  end
  local applied, rank = -1, -1
  if gen then
    applied = put(generations, gen, field, score, at, entry, name, ranked, buckets)
    if applied == 1 then
      bump(KEYS[k + 2])
      redis.call('SET', KEYS[k + 3], ARGV[4], 'NX')
    end
    local held = redis.call('HGET', generations .. gen .. ':n:' .. suffix, field)
    local z = generations .. gen .. ':z'
    local found = held and redis.call('ZREVRANK', z, string.sub(held, 1, 8) .. field)
    if found then rank = found end
  end
  out[#out + 1] = applied
  out[#out + 1] = rank
  local shown = rank >= 0 and tostring(rank + 1) or 'null'
  if label == '' then
    global_score, global_rank = score, shown
  else
    boards[#boards + 1] = label .. ',"score":' .. score .. ',"rank":' .. shown .. '}'
  end
end
if ARGV[5] ~= '' then redis.call('PUBLISH', ARGV[5], '') end
if ARGV[6] ~= '' and global_score and out[1] ~= -1 then
  redis.call('PUBLISH', ARGV[6], ARGV[7] .. '\\n{"type":"me.update","score":' .. global_score
    .. ',"rank":' .. global_rank .. ',"boards":[' .. table.concat(boards, ',') .. ']}')
end
return out
"""
)
