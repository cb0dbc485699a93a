"""Lua scripts for the Redis backend: each one is a single atomic step of the protocol.

All of them take the session's expiring keys in `SessionKeys.expiring()` order:
KEYS[1] state hash, [2] inbox, [3] turn records, [4] turn log, [5] idempotency, [6] events.

A turn's record is stored at acceptance together with its first attempt's running record,
under `<turn_id>#s` in the same hash (the record as START would write it, packed by the
gateway, which can: no script can repack a record), so that CLAIM can start the head's first
attempt in the step that takes the lease. Every start, and a withdrawn or failed turn, drops
that field; trimming drops it with its record.

The state hash's `runner` field fences attempts: START (only by the session's lease holder)
writes the starting attempt's runner token there, and a worker's COMMIT, FAIL and event
appends that name a runner are refused once another attempt has started or the turn has
ended, so a turn's stream only ever carries the words of the attempt that can still commit.
"""

from __future__ import annotations

from shared.backends.base import EVENTS_CAP

__all__ = [
    "ACCEPT",
    "ACCEPT_OWNED",
    "ADMIT",
    "RELEASE_ADMISSION",
    "APPEND_EVENT",
    "CLAIM",
    "COMMIT",
    "COUNT_REQUEST",
    "CREATE",
    "FAIL",
    "HEAD",
    "IMPORT",
    "RENEW",
    "RELEASE",
    "RELEASE_ORPHANED",
    "SETTLE_PENDING",
    "START",
    "UPDATE",
    "WITHDRAW",
]

_REFRESH = (
    f"local EVENTS_CAP = {EVENTS_CAP}\n"
    + """
local function refresh(ttl)
  for i = 1, 6 do redis.call('EXPIRE', KEYS[i], ttl) end
end
local function superseded(runner)
  return runner ~= nil and runner ~= '' and redis.call('HGET', KEYS[1], 'runner') ~= runner
end
local function emit(name, data)
  return redis.call('XADD', KEYS[6], 'MAXLEN', '~', EVENTS_CAP, '*', 'event', name, 'data', data)
end
-- After a turn finishes: keep every event of the turns still in flight, and of the finished
-- ones only the final event (turn.completed carries the whole narrative) of the newest
-- `keep`; the rest are deleted. A deleted entry's memory stays taken inside its node (of up
-- to 100 entries) until the whole node goes, so once more than `rebuild_after` deleted
-- entries may be lying in the stream's nodes it is built anew, the kept events under their
-- old ids: a cheap XDEL most turns, a rebuild now and then (0: a rebuild every time).
-- `deleted`: how many lie there now, as the state hash's `deleted` field counts them (the
-- callers write back what compact returns, in a write they make anyway; XINFO STREAM would
-- tell it too, at one more command every turn).
local FINAL = {['turn.completed'] = true, ['turn.failed'] = true}
local function compact(keep, rebuild_after, deleted, inbox)
  -- `inbox`: the inbox as it now is (oldest first), if the caller has read it already.
  -- Returns the inbox, for a caller that needs the next head, and the count of deleted
  -- entries left in the stream's nodes.
  inbox = inbox or redis.call('LRANGE', KEYS[2], 0, -1)
  local in_flight = {}
  for _, turn_id in ipairs(inbox) do in_flight[turn_id] = true end
  local entries = redis.call('XREVRANGE', KEYS[6], '+', '-', 'COUNT', EVENTS_CAP)
  local kept, finals, dropped = {}, 0, {}
  for _, entry in ipairs(entries) do
    -- entry: {id, {'event', name, 'data', data}}
    local name = entry[2][2]
    local ok, data = pcall(cjson.decode, entry[2][4])
    local turn_id = ok and type(data) == 'table' and data.turn_id or nil
    if turn_id and in_flight[turn_id] then
      kept[#kept + 1] = entry
    elseif FINAL[name] and finals < keep then
      kept[#kept + 1] = entry
      finals = finals + 1
    else
      dropped[#dropped + 1] = entry[1]
    end
  end
  if #dropped == 0 then return inbox, deleted end
  if #kept > 0 and deleted + #dropped <= rebuild_after then
    redis.call('XDEL', KEYS[6], unpack(dropped))
    return inbox, deleted + #dropped
  end
  redis.call('DEL', KEYS[6])
  for i = #kept, 1, -1 do
    redis.call('XADD', KEYS[6], kept[i][1], unpack(kept[i][2]))
  end
  -- A stream built anew has no TTL: it gets the session's.
  local ttl = redis.call('PTTL', KEYS[1])
  if ttl > 0 and #kept > 0 then redis.call('PEXPIRE', KEYS[6], ttl) end
  return inbox, 0
end
-- For FAIL and WITHDRAW: compact, then note the count (and clear the attempt's fence, with
-- `clear_runner`) in the state hash, if the session still has one.
local function compact_and_note(keep, rebuild_after, clear_runner)
  local stored = redis.call('HMGET', KEYS[1], 'version', 'deleted')
  local _, deleted = compact(keep, rebuild_after, tonumber(stored[2]) or 0)
  if not stored[1] then return end
  if clear_runner then
    redis.call('HSET', KEYS[1], 'deleted', deleted, 'runner', '')
  else
    redis.call('HSET', KEYS[1], 'deleted', deleted)
  end
end
"""
)

CREATE = (
    _REFRESH
    + """
-- ARGV: state_json, owner_hash, ttl, menu (see ACCEPT_OWNED)
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'version', 0, 'state', ARGV[1], 'owner', ARGV[2],
           'menu', '0\\n' .. ARGV[4])
refresh(ARGV[3])
return 1
"""
)

UPDATE = (
    _REFRESH
    + """
-- ARGV: expected_version, state_json (already at expected_version + 1), ttl, menu
local v = redis.call('HGET', KEYS[1], 'version')
if not v then return {'missing'} end
if tonumber(v) ~= tonumber(ARGV[1]) then return {'conflict', v} end
redis.call('HSET', KEYS[1], 'version', tonumber(v) + 1, 'state', ARGV[2],
           'menu', (tonumber(v) + 1) .. '\\n' .. ARGV[4])
refresh(ARGV[3])
return {'ok', tostring(tonumber(v) + 1)}
"""
)

# A new turn's writes, shared by ACCEPT and ACCEPT_OWNED. Both take ACCEPT's ARGV: turn_id,
# record, max_pending, ttl, ttl_slack, idem_key, fingerprint, event_data, records_kept, the
# first attempt's running record ('' for none).
_ACCEPT = """
-- The turn an Idempotency-Key was already used for: {'duplicate', turn_id, its record} or
-- {'reused'} (another turn's key); nil for a key not used yet, or none.
local function earlier_turn()
  if ARGV[6] == '' then return nil end
  local previous = redis.call('HGET', KEYS[5], ARGV[6])
  if not previous then return nil end
  local sep = string.find(previous, '\\n', 1, true)
  if string.sub(previous, sep + 1) ~= ARGV[7] then return {'reused'} end
  local turn_id = string.sub(previous, 1, sep - 1)
  return {'duplicate', turn_id, redis.call('HGET', KEYS[3], turn_id) or ''}
end
-- `left`: the state hash's PTTL; `pending`: the inbox's length before this turn.
local function accept(left, pending, record, running)
  if running and running ~= '' then
    redis.call('HSET', KEYS[3], ARGV[1], record, ARGV[1] .. '#s', running)
  else
    redis.call('HSET', KEYS[3], ARGV[1], record)
  end
  redis.call('RPUSH', KEYS[2], ARGV[1])
  local log_length = redis.call('RPUSH', KEYS[4], ARGV[1])
  local first_turn = log_length == 1
  -- Keep every pending turn's record and those of the records_kept newest finished turns (a
  -- finished turn's client may still be polling it): the turn log holds both, the inbox the
  -- pending ones.
  local checked = 0
  local pending_now = pending + 1
  -- (With no turn pending before this one, the oldest cannot be pending: no LPOS to ask.)
  while log_length - pending_now > tonumber(ARGV[9]) and checked < log_length do
    local oldest = redis.call('LPOP', KEYS[4])
    if pending > 0 and redis.call('LPOS', KEYS[2], oldest) then
      redis.call('RPUSH', KEYS[4], oldest)
    else
      redis.call('HDEL', KEYS[3], oldest, oldest .. '#s')
      log_length = log_length - 1
    end
    checked = checked + 1
  end
  if ARGV[6] ~= '' then redis.call('HSET', KEYS[5], ARGV[6], ARGV[1] .. '\\n' .. ARGV[7]) end
  -- Into the stream if it is there (nearly always: it keeps the last turns' final events);
  -- made anew only if not, and only then given a TTL below.
  local stream_made = not redis.call('XADD', KEYS[6], 'NOMKSTREAM', 'MAXLEN', '~', EVENTS_CAP,
                                     '*', 'event', 'turn.queued', 'data', ARGV[8])
  if stream_made then emit('turn.queued', ARGV[8]) end
  -- The session's keys live the session's TTL from its last accepted turn. Refreshing all six
  -- is left until their TTL has run down by ttl_slack: until then only a key this step
  -- created (the inbox each time it was empty, the stream if it was gone, the records and
  -- turn log on the first turn, the idempotency hash) gets the TTL the others have left, so
  -- that every key of the session still goes at the same moment.
  local ttl_ms = tonumber(ARGV[4]) * 1000
  if left < ttl_ms - tonumber(ARGV[5]) * 1000 or left > ttl_ms then
    refresh(ARGV[4])
  else
    if pending == 0 then redis.call('PEXPIRE', KEYS[2], left) end
    if first_turn then
      redis.call('PEXPIRE', KEYS[3], left)
      redis.call('PEXPIRE', KEYS[4], left)
    end
    if ARGV[6] ~= '' then redis.call('PEXPIRE', KEYS[5], left) end
    if stream_made then redis.call('PEXPIRE', KEYS[6], left) end
  end
end
"""

ACCEPT = (
    _REFRESH
    + _ACCEPT
    + """
local left = redis.call('PTTL', KEYS[1])
if left == -2 then return {'missing'} end
local earlier = earlier_turn()
if earlier then return earlier end
local pending = redis.call('LLEN', KEYS[2])
if pending >= tonumber(ARGV[3]) then return {'busy'} end
accept(left, pending, ARGV[2], ARGV[10])
return {'accepted'}
"""
)

HEAD = """
-- The record of the oldest pending turn. An id whose record is gone cannot be applied: drop
-- it rather than leave the session stuck behind it.
-- KEYS[7]: the lease. ARGV (optional): holder, ttl_ms: renew the holder's lease first.
if ARGV[1] then
  if redis.call('GET', KEYS[7]) ~= ARGV[1] then return 'lease_lost' end
  redis.call('PEXPIRE', KEYS[7], ARGV[2])
end
while true do
  local turn_id = redis.call('LINDEX', KEYS[2], 0)
  if not turn_id then return false end
  local record = redis.call('HGET', KEYS[3], turn_id)
  if record then return record end
  redis.call('LPOP', KEYS[2])
  redis.call('HDEL', KEYS[3], turn_id .. '#s')
end
"""

WITHDRAW = (
    _REFRESH
    + """
-- ARGV: turn_id, failed_record_json, ttl, events_kept, event_data, idem_key, rebuild_after
local was_head = redis.call('LINDEX', KEYS[2], 0) == ARGV[1]
if redis.call('LREM', KEYS[2], 1, ARGV[1]) == 0 then return 0 end
redis.call('HSET', KEYS[3], ARGV[1], ARGV[2])
redis.call('HDEL', KEYS[3], ARGV[1] .. '#s')
-- The request failed as a whole: a retry with the same key must be able to try again.
if ARGV[6] ~= '' then redis.call('HDEL', KEYS[5], ARGV[6]) end
emit('turn.failed', ARGV[5])
compact_and_note(tonumber(ARGV[4]), tonumber(ARGV[7]), was_head)
refresh(ARGV[3])
return 1
"""
)

START = (
    _REFRESH  # for emit()
    + """
-- ARGV: turn_id, running_record_json, (unused), runner ('' for none), event_data, lease
-- holder ('' for no check). KEYS[7]: the lease. Only the lease holder may supersede an
-- attempt. No TTL refresh: the ACCEPT of this turn refreshed every key moments ago.
if ARGV[6] ~= '' and redis.call('GET', KEYS[7]) ~= ARGV[6] then return 0 end
if redis.call('LINDEX', KEYS[2], 0) ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[3], ARGV[1], ARGV[2])
redis.call('HDEL', KEYS[3], ARGV[1] .. '#s')  -- no longer the first attempt's
if ARGV[4] ~= '' then
  redis.call('HSET', KEYS[1], 'runner', ARGV[4])
else
  redis.call('HDEL', KEYS[1], 'runner')
end
emit('turn.started', ARGV[5])
return 1
"""
)

COMMIT = (
    _REFRESH
    + """
-- ARGV: expected_version, turn_id, state_json (at expected_version + 1), record_json, ttl,
--       events_kept, event_data, runner ('' for an unfenced commit), rebuild_after,
--       lease holder ('' for none), lease ttl_ms, the new state's menu (see ACCEPT_OWNED).
--       KEYS[7]: the lease. KEYS[8..10] (optional;
--       standalone stores only, their slot is not the session's): the turn's admission
--       ticket, given back with the commit as RELEASE_ADMISSION would (its KEYS, in order).
-- Returns {'ok', version} and, for a lease holder, 'released' (no turn waits: the lease is
-- gone) or 'next', the next head's record (the lease renewed).
local stored = redis.call('HMGET', KEYS[1], 'version', 'runner', 'deleted')
local v, runner = stored[1], stored[2]
if not v then return {'missing'} end
if ARGV[8] ~= '' and runner ~= ARGV[8] then return {'superseded'} end
if tonumber(v) ~= tonumber(ARGV[1]) then return {'conflict', v} end
-- The whole inbox (a few ids): its head is checked here, and the rest is what compact keeps
-- the events of and where the next head comes from.
local inbox = redis.call('LRANGE', KEYS[2], 0, -1)
if inbox[1] ~= ARGV[2] then return {'conflict', v} end
-- Every check is above: a script's writes are not rolled back, and none of these can fail
-- on keys of the types the checks read (nor create one: the state hash exists). The first
-- write is one Redis refuses over maxmemory (an HSET; an LPOP is not), and so refuses the
-- whole commit: once a script has written, Redis lets the rest of it write too.
redis.call('HSET', KEYS[3], ARGV[2], ARGV[4])
redis.call('LPOP', KEYS[2])
table.remove(inbox, 1)
emit('turn.completed', ARGV[7])
local deleted
inbox, deleted = compact(tonumber(ARGV[6]), tonumber(ARGV[9]), tonumber(stored[3]) or 0, inbox)
-- One write for the new state, the end of the attempt's fence ('' fences every runner, as
-- no field would) and compact's count.
redis.call('HSET', KEYS[1], 'version', tonumber(v) + 1, 'state', ARGV[3], 'runner', '',
           'deleted', deleted, 'menu', (tonumber(v) + 1) .. '\\n' .. ARGV[12])
-- Deletes only: a store over maxmemory lets them through (it let the commit's writes).
if KEYS[8] then
  redis.call('ZREM', KEYS[8], ARGV[2])
  redis.call('ZREM', KEYS[10], ARGV[2])
  redis.call('HDEL', KEYS[9], ARGV[2])
end
-- No refresh of the six keys: this turn's ACCEPT gave them the session's TTL moments ago,
-- and COMMIT creates no key (compact gives a rebuilt stream the session's TTL).
local committed = tostring(tonumber(v) + 1)
if ARGV[10] == nil or ARGV[10] == '' or redis.call('GET', KEYS[7]) ~= ARGV[10] then
  return {'ok', committed}
end
local next_id = inbox[1]
if not next_id then
  redis.call('DEL', KEYS[7])
  return {'ok', committed, 'released'}
end
local record = redis.call('HGET', KEYS[3], next_id)
if not record then return {'ok', committed} end
redis.call('PEXPIRE', KEYS[7], ARGV[11])
return {'ok', committed, 'next', record}
"""
)

FAIL = (
    _REFRESH
    + """
-- ARGV: turn_id, failed_record_json, ttl, events_kept, event_data, runner ('' for none),
--       rebuild_after
if redis.call('LINDEX', KEYS[2], 0) ~= ARGV[1] then return 0 end
if superseded(ARGV[6]) then return -1 end
redis.call('LPOP', KEYS[2])
redis.call('HSET', KEYS[3], ARGV[1], ARGV[2])
redis.call('HDEL', KEYS[3], ARGV[1] .. '#s')
emit('turn.failed', ARGV[5])
compact_and_note(tonumber(ARGV[4]), tonumber(ARGV[7]), true)
refresh(ARGV[3])
return 1
"""
)

APPEND_EVENT = (
    _REFRESH
    + """
-- ARGV: runner ('' for none), name, data. Only for a live session: a stream key created after
-- the session expired would never expire itself.
if ARGV[1] ~= '' then
  -- A running attempt's words (a narration delta every NARRATION_DELTA_INTERVAL): two
  -- commands. Its runner token is in the state hash while it may commit, and the stream
  -- holds its turn.queued and turn.started with the session's TTL; NOMKSTREAM never
  -- makes a stream without one (should it be gone, so is the session, a moment later).
  local runner = redis.call('HGET', KEYS[1], 'runner')
  if runner ~= ARGV[1] then
    if not runner and redis.call('EXISTS', KEYS[1]) == 0 then return false end
    return {'superseded'}
  end
  return redis.call('XADD', KEYS[6], 'NOMKSTREAM', 'MAXLEN', '~', EVENTS_CAP, '*',
                    'event', ARGV[2], 'data', ARGV[3])
end
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then return false end
local id = emit(ARGV[2], ARGV[3])
redis.call('PEXPIRE', KEYS[6], ttl)
return id
"""
)

# KEYS[1]: the pending-sessions set. ARGV: session id, the score it was read with.
SETTLE_PENDING = """
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if score and tonumber(score) == tonumber(ARGV[2]) then
  return redis.call('ZREM', KEYS[1], ARGV[1])
end
return 0
"""

# KEYS[1]: a client's counter for one window. ARGV: window seconds.
COUNT_REQUEST = """
local count = redis.call('INCR', KEYS[1])
if count == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
return count
"""

# A new turn's admission ticket, shared by ADMIT and ACCEPT_OWNED. `t`: the ticket keys (every
# ticket, ticket -> client, the client's tickets); then the turn id, now, when the ticket
# lapses, max_total, max_per_client (0: no limit) and the client digest.
_TICKET = """
-- Lapsed tickets are cleared now and then, in one admission of eight (picked by the new
-- ticket's id, which is random): the counts below leave them out anyway, so clearing them
-- only gives their memory back, and every admission need not pay for looking. Cleared after
-- the ticket's own writes: a script's first write is the one a full store refuses, and one
-- that only deletes would let the ticket in past maxmemory.
local function sweep(t, turn_id, now)
  if string.byte(turn_id, -1) % 8 ~= 0 then return end
  local lapsed = redis.call('ZRANGEBYSCORE', t[1], '-inf', now, 'LIMIT', 0, 100)
  if #lapsed > 0 then
    redis.call('ZREM', t[1], unpack(lapsed))
    redis.call('HDEL', t[2], unpack(lapsed))
  end
  redis.call('ZREMRANGEBYSCORE', t[3], '-inf', now)
end
local function admit(t, turn_id, now, lapses_at, max_total, per_client, client)
  local live = '(' .. now
  if redis.call('ZCOUNT', t[1], live, '+inf') >= tonumber(max_total) then
    sweep(t, turn_id, now)
    return 'overloaded'
  end
  per_client = tonumber(per_client)
  if per_client > 0 and redis.call('ZCOUNT', t[3], live, '+inf') >= per_client then
    sweep(t, turn_id, now)
    return 'client_busy'
  end
  redis.call('ZADD', t[1], lapses_at, turn_id)
  redis.call('ZADD', t[3], lapses_at, turn_id)
  redis.call('HSET', t[2], turn_id, client)
  redis.call('EXPIREAT', t[3], math.ceil(tonumber(lapses_at)) + 1)
  sweep(t, turn_id, now)
  return 'admitted'
end
"""

# Fair admission of a new turn. KEYS[1]: every ticket (turn id -> lapse time), [2] ticket ->
# client digest, [3] this client's tickets. ARGV: turn_id, now, lapses_at, max_total,
# max_per_client (0: no limit), client digest. Tickets whose holders died before releasing
# them lapse by themselves: the count heals instead of drifting up. This version's release
# takes the client from the turn's record and never reads KEYS[2]; it is still written for
# workers of the version before, which find a ticket's client only there (during a rolling
# upgrade their releases would otherwise leave the ticket counted until it lapses). The HSET
# can go once no such worker runs. With KEYS[4], a session's state hash, and ARGV[7], the
# player's token hash (a new turn's first reads in the same round trip; standalone servers
# only, the keys' slots differ), no ticket is taken unless the token is the owner's: returns
# {'missing'}, or {answer, state} where answer may also be 'unavailable' (out of memory).
ADMIT = (
    _TICKET
    + """
local function admit_this()
  return admit({KEYS[1], KEYS[2], KEYS[3]}, ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6])
end
if not KEYS[4] then
  return admit_this()
end
local read = redis.call('HMGET', KEYS[4], 'owner', 'state')
if not read[2] or read[1] ~= ARGV[7] then
  return {'missing'}
end
-- A store over maxmemory refuses the ticket's first write: told as an answer, so that the
-- gateway can still refuse the turn for what is wrong with it first (404, 409, 422).
local ok, answer = pcall(admit_this)
if not ok then
  local message = type(answer) == 'table' and answer.err or tostring(answer)
  if string.find(message, 'OOM command not allowed', 1, true) then
    return {'unavailable', read[2]}
  end
  return redis.error_reply(message)  -- as redis.call gave it (a replica's READONLY, ...)
end
return {answer, read[2]}
"""
)

# A new turn in one step (standalone and Sentinel stores: the keys' slots differ on a
# Cluster): the owner check, the turn's checks against the state's `menu` field, its
# admission ticket, the pending marks and ACCEPT's writes. The menu (`<version>\n<json>`:
# whether the adventure has ended, and what each choice means) is written with each state,
# for the version it describes; a state written without one (by a release before this one)
# answers {'legacy'} and the gateway takes the two steps, ADMIT then ACCEPT.
# KEYS: the session's expiring keys, [7..9] the ticket keys (as ADMIT's), [10] the pending
# sessions, [11] the active sessions. ARGV: ACCEPT's ten (a turn by choice passes an empty
# record and running record, built here from [13..16] around the chosen action, as plain
# JSON: no script can pack one), [11] the player's token hash, [12] the choice ('' for an
# action in the player's words), [13], [14] the record before and after its action, [15],
# [16] the running record's, [17..21] the ticket's now, lapse time, max_total,
# max_per_client and client, [22] the session id, [23] when the turn was accepted.
# Every refusal comes before the first write (the ticket's): a store over maxmemory fails
# the turn only once nothing else is wrong with it. Returns {'accepted', action} or what
# ADMIT and ACCEPT refuse with, and {'completed'} or {'bad_choice', choices}.
ACCEPT_OWNED = (
    _REFRESH
    + _TICKET
    + _ACCEPT
    + """
local read = redis.call('HMGET', KEYS[1], 'owner', 'version', 'menu')
if not read[1] or read[1] ~= ARGV[11] then return {'missing'} end
local sep = read[3] and string.find(read[3], '\\n', 1, true)
if not sep or tonumber(string.sub(read[3], 1, sep - 1)) ~= tonumber(read[2]) then
  return {'legacy'}
end
local earlier = earlier_turn()
if earlier then return earlier end
local menu = cjson.decode(string.sub(read[3], sep + 1))
if menu.ended then return {'completed'} end
local record, running, action = ARGV[2], ARGV[10], ''
if ARGV[12] ~= '' then
  action = menu.actions[tonumber(ARGV[12])]
  if type(action) ~= 'string' then return {'bad_choice', #menu.actions} end
  local quoted = cjson.encode(action)
  record = ARGV[13] .. quoted .. ARGV[14]
  running = ARGV[15] .. quoted .. ARGV[16]
end
local pending = redis.call('LLEN', KEYS[2])
if pending >= tonumber(ARGV[3]) then return {'busy'} end
local admitted = admit({KEYS[7], KEYS[8], KEYS[9]}, ARGV[1], ARGV[17], ARGV[18], ARGV[19],
                       ARGV[20], ARGV[21])
if admitted ~= 'admitted' then return {admitted} end
redis.call('ZADD', KEYS[10], ARGV[23], ARGV[22])
redis.call('ZADD', KEYS[11], 'GT', ARGV[23], ARGV[22])
accept(redis.call('PTTL', KEYS[1]), pending, record, running)
return {'accepted', action}
"""
)

# KEYS: as ADMIT's, [3] (when known) the ticket's client's tickets. ARGV: turn_id.
RELEASE_ADMISSION = """
redis.call('ZREM', KEYS[1], ARGV[1])
if KEYS[3] then redis.call('ZREM', KEYS[3], ARGV[1]) end
return redis.call('HDEL', KEYS[2], ARGV[1])
"""

# A drain's first step: the session's lease (free, or left behind by `reclaim`: a drain of the
# same thread that could not release it), and with it the head turn's record and the state it
# will start from; with a runner token, the head's first attempt is started too, as START
# would, if none has been (its running record waits under `<turn_id>#s`, and no attempt's
# runner fences the session). KEYS: the session's expiring keys, [7] the lease. ARGV: holder,
# ttl_ms, reclaim ('' for none), runner ('' for no start). Returns false (lease taken), {}
# (the inbox is empty), {record, state} or {running record, state, 1} (started). An inbox id
# whose record is gone is dropped, as HEAD does. Run again with the same arguments (a client
# that retries after a lost reply) it answers the same: the holder and the runner are
# unique to one drain and one attempt.
CLAIM = (
    f"""
local EVENTS_CAP = {EVENTS_CAP}
"""
    + """
-- The lease is nearly always free: taken in one command. Held, it is taken over only from
-- `reclaim`, or kept by the holder that already has it.
if not redis.call('SET', KEYS[7], ARGV[1], 'PX', ARGV[2], 'NX') then
  local current = redis.call('GET', KEYS[7])
  if current ~= ARGV[1] and (ARGV[3] == '' or current ~= ARGV[3]) then return false end
  redis.call('SET', KEYS[7], ARGV[1], 'PX', ARGV[2])
end
local starting = ARGV[4] ~= nil and ARGV[4] ~= ''
while true do
  local turn_id = redis.call('LINDEX', KEYS[2], 0)
  if not turn_id then return {} end
  local first = turn_id .. '#s'
  local read = redis.call('HMGET', KEYS[3], turn_id, first)
  if read[1] then
    local session = redis.call('HMGET', KEYS[1], 'state', 'runner')
    local state, runner = session[1] or '', session[2]
    if starting and runner == ARGV[4] then return {read[1], state, 1} end
    if not (starting and read[2]) then return {read[1], state} end
    if runner and runner ~= '' then
      -- An attempt already runs or ran (started by a worker that leaves this record in
      -- place: one of the version before): what was made ahead is no longer its first.
      redis.call('HDEL', KEYS[3], first)
      return {read[1], state}
    end
    -- No TTL refresh, as in START: this turn's ACCEPT refreshed every key moments ago.
    redis.call('HSET', KEYS[3], turn_id, read[2])
    redis.call('HDEL', KEYS[3], first)
    redis.call('HSET', KEYS[1], 'runner', ARGV[4])
    redis.call('XADD', KEYS[6], 'MAXLEN', '~', EVENTS_CAP, '*', 'event', 'turn.started',
               'data', '{"turn_id":"' .. turn_id .. '","attempt":1}')
    return {read[2], state, 1}
  end
  redis.call('LPOP', KEYS[2])
  if read[2] then redis.call('HDEL', KEYS[3], first) end
end
"""
)

# KEYS[1]: the lease key. ARGV: holder, ttl_ms
RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""

# KEYS[1]: the lease key, [2] the inbox. ARGV: holder. Returns the turns waiting.
RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return redis.call('LLEN', KEYS[2])
"""

# KEYS[1]: the lease key. ARGV: the holder prefix of a process known to be dead.
RELEASE_ORPHANED = """
local holder = redis.call('GET', KEYS[1])
if holder and string.sub(holder, 1, #ARGV[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""

# An exported session written back (portals sessions import / migrate). KEYS: every key of
# the session, the state hash first. ARGV: version, packed state, owner hash, ttl_ms, overwrite
# ('1' or '0'), the state's menu (see ACCEPT_OWNED). The same or a newer version already
# stored is kept unless told to overwrite.
# What the replaced copy had in flight (inbox, turn records, events, lease) belongs to a
# history the imported state does not share: it goes too, or a worker would apply its queued
# turns to the imported state.
IMPORT = """
local current = redis.call('HGET', KEYS[1], 'version')
if current and ARGV[5] ~= '1' and tonumber(current) >= tonumber(ARGV[1]) then
  return {'kept', current}
end
redis.call('DEL', unpack(KEYS))
redis.call('HSET', KEYS[1], 'version', ARGV[1], 'state', ARGV[2], 'owner', ARGV[3],
           'menu', ARGV[1] .. '\\n' .. ARGV[6])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return {'written', ARGV[1]}
"""
