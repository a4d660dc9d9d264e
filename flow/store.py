"""The flow store: flow state in Redis, changed only by atomic Lua transitions.

Each transition is one script run: it reads the state, asks the transition tables of
:mod:`otpflow.flow.states` whether the event is allowed, writes the new state, appends the
timeline event and maintains the deadline index, all at once. So concurrent or repeated tasks
and duplicate or late reports can never send a step twice or switch twice: whoever comes second
finds the state already moved and gets told so.

Time inside the scripts is Redis's own clock (``TIME``), one clock for every process.
"""

from __future__ import annotations

import hmac
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from redis import Redis

from otpflow.config.settings import Limits
from otpflow.flow import keys, metrics
from otpflow.flow.keyring import Keyring, KeyringMismatch
from otpflow.flow.models import FlowRequest
from otpflow.flow.states import (
    DLR_EVENTS,
    FLOW_TRANSITIONS,
    STEP_TRANSITIONS,
    TERMINAL_FLOW,
    DlrStatus,
    FlowStatus,
    lua_table,
)

_PRELUDE = (
    lua_table("STEP", STEP_TRANSITIONS)
    + lua_table("FLOW", FLOW_TRANSITIONS)
    + metrics.lua_prelude()
    + """
local FLOW_KEY, EVENTS_KEY, TIMERS_KEY, REQUEST_KEY = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local CLAIMED_KEY = KEYS[6]
local FLOW_ID = ARGV[1]
local TTL = tonumber(ARGV[2])
-- how long a step may wait unclaimed, or a leased timer stay taken, before it is recovered
local GRACE = tonumber(ARGV[3])
local t = redis.call('TIME')
local NOW = tonumber(t[1]) + tonumber(t[2]) / 1000000

local function get(name) return redis.call('HGET', FLOW_KEY, name) end
local function sget(i, name) return redis.call('HGET', FLOW_KEY, 's' .. i .. ':' .. name) end
local function sset(i, name, value) redis.call('HSET', FLOW_KEY, 's' .. i .. ':' .. name, value) end

local function event(ev)
  ev.ts = NOW
  redis.call('RPUSH', EVENTS_KEY, cjson.encode(ev))
end

local function step_to(i, ev)
  local target = STEP[(sget(i, 'status') or '') .. '|' .. ev]
  if target then
    sset(i, 'status', target)
    if target ~= 'sending' and target ~= 'sent' then sset(i, 'ended_at', NOW) end
  end
  return target
end

local function flow_to(ev)
  local before = get('status') or ''
  local target = FLOW[before .. '|' .. ev]
  if target then
    redis.call('HSET', FLOW_KEY, 'status', target, 'updated_at', NOW)
    if target ~= 'in_progress' then
      redis.call('HSET', FLOW_KEY, 'ended_at', NOW)
      -- counted once, at the first end (delivered then verified is one delivered flow)
      if before == 'queued' or before == 'in_progress' then
        count('flows_ended|outcome=' .. target)
      end
    end
  end
  return target
end

-- The step's timer: when the workers' timer loop must look at it again.
local function set_timer(i, at)
  redis.call('ZADD', TIMERS_KEY, at, FLOW_ID .. ':' .. i)
  redis.call('EXPIRE', TIMERS_KEY, TTL)
end

-- A deadline the step must meet (its send lease, then its DLR timeout), with its timer.
local function set_deadline(i, at)
  sset(i, 'deadline', at)
  set_timer(i, at)
end

local function clear_deadline(i)
  redis.call('ZREM', TIMERS_KEY, FLOW_ID .. ':' .. i)
end

-- The recipients may start a new flow now (the markers submit set, if still this flow's).
local function release_recipients()
  for key in string.gmatch(get('active') or '', '%S+') do
    if redis.call('GET', key) == FLOW_ID then redis.call('DEL', key) end
  end
end

-- The flow has ended: later steps that never started are skipped, no deadline remains.
local function close_steps()
  local n = tonumber(get('steps'))
  for i = 0, n - 1 do
    clear_deadline(i)
    step_to(i, 'skip')
  end
  release_recipients()
  -- a code can still be entered after delivery; after anything else it is of no more use
  local status = get('status')
  if status ~= 'delivered' then redis.call('DEL', FLOW_KEY .. ':code') end
end

local function ended(kind, detail)
  return {kind, detail, get('terminal_hook') or '0'}
end

-- Step i has ended without delivery: move to the next step, or fail the flow.
local function advance(i, reason)
  clear_deadline(i)
  local n = tonumber(get('steps'))
  local from_status = sget(i, 'status')
  if i + 1 < n then
    redis.call('HSET', FLOW_KEY, 'current', i + 1, 'updated_at', NOW)
    -- its send is queued now (the caller publishes it); a grace period on, see _CHECK
    sset(i + 1, 'queued_at', NOW)
    set_timer(i + 1, NOW + GRACE)
    event({type = 'channel_switch', step = i, to_step = i + 1, status = from_status,
           reason = reason, channel = sget(i, 'channel'), to_channel = sget(i + 1, 'channel')})
    count('channel_switches|from_channel=' .. sget(i, 'channel') .. '|to_channel='
          .. sget(i + 1, 'channel') .. '|reason=' .. reason)
    return {'switched', tostring(i + 1), get('webhook') or '0'}
  end
  flow_to('exhaust')
  redis.call('HSET', FLOW_KEY, 'reason', reason)
  close_steps()
  event({type = 'flow_failed', step = i, status = from_status, reason = reason})
  return ended('exhausted', '')
end

if redis.call('EXISTS', FLOW_KEY) == 0 then return {'missing', ''} end
local FLOW_ENDED = {delivered = true, failed = true, cancelled = true, verified = true}
"""
)

_CLAIM = """
local i, attempt, lease = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local status = get('status')
if FLOW_ENDED[status] then
  step_to(i, 'skip')
  return {'flow_ended', status}
end
if tonumber(get('current')) ~= i then return {'not_current', get('current')} end
-- A flow is accepted only once its producer saw the enqueue succeed (see mark_enqueued). A
-- send that arrives first waits for the confirmation to wake it ('waiting'); if it waited in
-- vain (ARGV[7] = '1') it leaves, and the producer publishes it again as it confirms ('gone').
if get('enqueued') ~= '1' then
  redis.call('HSET', FLOW_KEY, 'early', ARGV[7] == '1' and 'gone' or 'waiting')
  return {'not_enqueued', get('created_at')}
end
if attempt == 1 then
  if not step_to(i, 'claim') then return {'already_claimed', sget(i, 'status')} end
  sset(i, 'claimed_at', NOW)
  local queued = tonumber(sget(i, 'queued_at'))
  if queued and queued > tonumber(redis.call('GET', CLAIMED_KEY) or '0') then
    redis.call('SET', CLAIMED_KEY, tostring(queued), 'EX', TTL)
  end
  set_deadline(i, NOW + lease)
  flow_to('start')
elseif sget(i, 'status') ~= 'sending' or tonumber(sget(i, 'attempts')) ~= attempt - 1 then
  return {'already_claimed', sget(i, 'status')}
end
sset(i, 'attempts', attempt)
-- How long the step has been sending, by Redis time (its send budget is measured on it), and
-- what the send needs (the request and the code), in this same round trip.
return {'claimed', tostring(NOW - tonumber(sget(i, 'claimed_at'))), '0',
        redis.call('GET', REQUEST_KEY) or '', redis.call('GET', FLOW_KEY .. ':code') or '',
        get('keyring') or ''}
"""

_ACCEPTED = """
local i, provider, message_id, timeout = tonumber(ARGV[4]), ARGV[5], ARGV[6], tonumber(ARGV[7])
count('provider_sends|provider=' .. provider .. '|channel=' .. sget(i, 'channel')
      .. '|result=accepted')
sset(i, 'provider', provider)
sset(i, 'message_id', message_id)
sset(i, 'accepted_at', NOW)
event({type = 'sent', step = i, channel = sget(i, 'channel'), provider = provider,
       message_id = message_id})
if not step_to(i, 'accepted') then return {'ignored', sget(i, 'status')} end
set_deadline(i, NOW + timeout)
return {'sent', tostring(NOW + timeout)}
"""

_SEND_ERROR = """
local i, provider, reason = tonumber(ARGV[4]), ARGV[5], ARGV[6]
if provider ~= '' then sset(i, 'provider', provider) end
sset(i, 'reason', reason)
if not step_to(i, 'send_error') then return {'ignored', sget(i, 'status')} end
event({type = 'send_error', step = i, channel = sget(i, 'channel'), provider = provider,
       reason = reason})
-- the step is over: the next channel starts now
if FLOW_ENDED[get('status')] or tonumber(get('current')) ~= i then return {'error', ''} end
return advance(i, 'send_error')
"""

_ATTEMPT_FAILED = """
local i, provider, reason, attempt = tonumber(ARGV[4]), ARGV[5], ARGV[6], tonumber(ARGV[7])
event({type = 'attempt_failed', step = i, channel = sget(i, 'channel'), provider = provider,
       reason = reason, attempt = attempt})
return {'recorded', ''}
"""

_DLR = """
-- ARGV[10]: the raw report to keep for relaying to the caller ('' for none), KEYS[7] the list
-- it is kept in, ARGV[11] how many a step keeps. Returned fourth: its index, or -1.
local i, dlr, step_event, provider = tonumber(ARGV[4]), ARGV[5], ARGV[6], ARGV[7]
local message_id, max_reports = ARGV[8], tonumber(ARGV[9])
local before = sget(i, 'status')
if not before or before == 'pending' or before == 'skipped' then
  -- no message went out for this step: whatever this is, it is not its report
  return {'ignored', before or '', '0', -1}
end
-- A step's callback token is good for the flow's life: replayed or invented reports must not
-- grow it without bound. Past a budget per step nothing more is recorded, and a report seen
-- before (its status for that provider message) is a duplicate, however they alternate.
if redis.call('HINCRBY', FLOW_KEY, 's' .. i .. ':dlr_count', 1) > max_reports then
  return {'too_many', '', '0', -1}
end
-- every report from here on, duplicates too, reaches a caller who gave its own post_back_url
local kept = -1
if ARGV[10] ~= '' and sget(i, 'relay') == '1'
    and redis.call('HINCRBY', FLOW_KEY, 's' .. i .. ':kept', 1) <= tonumber(ARGV[11]) then
  kept = redis.call('RPUSH', KEYS[7], ARGV[10]) - 1
  redis.call('EXPIRE', KEYS[7], TTL)
end
local function apply()
local seen, this = sget(i, 'dlr_seen') or '\\n', dlr .. ' ' .. message_id .. '\\n'
if string.find(seen, '\\n' .. this, 1, true) then return {'duplicate', ''} end
sset(i, 'dlr_seen', seen .. this)
sset(i, 'dlr', dlr)
sset(i, 'dlr_at', NOW)
local sent_at = tonumber(sget(i, 'accepted_at') or sget(i, 'claimed_at'))
if step_event ~= '' and not sget(i, 'final_dlr_at') and sent_at then
  -- the first final report of the step, on time or late, is its delivery latency
  sset(i, 'final_dlr_at', NOW)
  local outcome = 'failed'
  if step_event == 'dlr_delivered' then outcome = 'delivered' end
  observe_latency('channel=' .. sget(i, 'channel') .. '|provider=' .. provider
                  .. '|outcome=' .. outcome, math.max(NOW - sent_at, 0))
end
local flow_status = get('status')
local ev = {type = 'dlr', step = i, channel = sget(i, 'channel'), provider = provider, status = dlr}
if step_event == '' then
  event(ev)
  return {'recorded', ''}
end
local step_status = step_to(i, step_event)
if not step_status then
  -- the step had already ended: a late report is recorded, and may still end a running flow
  ev.late = true
  event(ev)
  if step_event == 'dlr_delivered' and flow_to('deliver') then
    redis.call('HSET', FLOW_KEY, 'delivered_step', i)
    close_steps()
    event({type = 'flow_delivered', step = i, late = true})
    return ended('delivered', 'late')
  end
  return {'late', ''}
end
event(ev)
if step_status == 'delivered' then
  if flow_to('deliver') then
    redis.call('HSET', FLOW_KEY, 'delivered_step', i)
    close_steps()
    event({type = 'flow_delivered', step = i})
    return ended('delivered', '')
  end
  return {'recorded', ''}
end
-- failed: the next channel starts now instead of at the timeout
if FLOW_ENDED[flow_status] or tonumber(get('current')) ~= i then return {'recorded', ''} end
return advance(i, 'dlr_' .. dlr)
end
local result = apply()
return {result[1], result[2], result[3] or '0', kept}
"""

_CHECK = """
-- A step's timer is due: decide what it means now.
local i, resend_cap = tonumber(ARGV[4]), tonumber(ARGV[5])
if FLOW_ENDED[get('status')] then
  clear_deadline(i)
  return {'flow_ended', get('status')}
end
local current = tonumber(get('current'))
if current ~= i then
  clear_deadline(i)
  return {'moved_on', tostring(current)}
end
local status = sget(i, 'status')
if status == 'sent' or status == 'sending' then
  local deadline = tonumber(sget(i, 'deadline'))
  if NOW < deadline then
    set_timer(i, deadline)  -- taken early (a lease ran out): put its real due time back
    return {'not_due', tostring(deadline - NOW)}
  end
  step_to(i, 'deadline')
  if status == 'sent' then return advance(i, 'timeout') end
  -- its send task vanished mid-send: never sent again, the next channel covers it
  sset(i, 'reason', 'send_lease_expired')
  return advance(i, 'send_lease_expired')
end
if status == 'failed' then return advance(i, 'dlr_' .. (sget(i, 'dlr') or 'failed')) end
if status == 'error' then return advance(i, 'send_error') end
-- pending, a grace period after it became current, and never claimed
if i == 0 and get('enqueued') ~= '1' then
  -- its producer never saw the enqueue succeed and answered 503: the flow was never accepted
  clear_deadline(i)
  release_recipients()
  redis.call('DEL', FLOW_KEY, EVENTS_KEY, REQUEST_KEY, FLOW_KEY .. ':reports', FLOW_KEY .. ':code')
  return {'discarded', ''}
end
-- Lost with a killed worker, or only waiting its turn behind a backlog? Sends are taken first in,
-- first out: until a send queued a grace period after this one has been claimed, it waits (up
-- to the cap), since a duplicate would only grow the backlog it waits in.
local queued = tonumber(sget(i, 'queued_at') or '0')
if tonumber(redis.call('GET', CLAIMED_KEY) or '0') < queued + GRACE
    and NOW < queued + resend_cap then
  set_timer(i, NOW + GRACE)
  return {'queued', ''}
end
-- Overtaken: its send was lost. The claim makes a resend safe even if it was not; each resend
-- doubles the wait before the next, so a backlog is fed a few duplicates per step at most.
local resends = redis.call('HINCRBY', FLOW_KEY, 's' .. i .. ':resends', 1)
set_timer(i, NOW + math.min(GRACE * 2 ^ (resends - 1), resend_cap))
return {'resend', tostring(resends)}
"""

_VERIFY_ATTEMPT = """
-- Spend one attempt and hand back the code to compare (in constant time, by the caller).
local code = redis.call('GET', FLOW_KEY .. ':code')
if get('status') == 'verified' then return {'already_verified', ''} end
-- a recipient whose wrong codes across flows spent its budget waits out the window
local budget = tonumber(ARGV[4])
for key in string.gmatch(get('verify_budget') or '', '%S+') do
  if tonumber(redis.call('GET', key) or '0') >= budget then
    return {'blocked', tostring(math.max(redis.call('TTL', key), 1))}
  end
end
if not code then
  if get('otp_locked') == '1' then return {'locked', ''} end
  return {'expired', ''}
end
local left = redis.call('HINCRBY', FLOW_KEY, 'otp_attempts_left', -1)
if left < 0 then return {'locked', ''} end
return {'compare', code, get('keyring') or ''}
"""

_VERIFIED = """
if not flow_to('verify') then return {'ignored', get('status')} end
redis.call('DEL', FLOW_KEY .. ':code')
close_steps()
count('verifications|result=verified')
event({type = 'flow_verified'})
return ended('verified', '')
"""

_WRONG_CODE = """
local left = tonumber(get('otp_attempts_left'))
-- spend the recipients' budget of wrong codes across flows (ARGV[4]: its window)
for key in string.gmatch(get('verify_budget') or '', '%S+') do
  if redis.call('INCR', key) == 1 then redis.call('EXPIRE', key, tonumber(ARGV[4])) end
end
event({type = 'verify_failed', attempts_left = math.max(left, 0)})
if left > 0 then
  count('verifications|result=wrong_code')
  return {'wrong', tostring(left)}
end
count('verifications|result=locked')
-- out of attempts: the code is gone, and no further channel sends it
redis.call('DEL', FLOW_KEY .. ':code')
redis.call('HSET', FLOW_KEY, 'otp_locked', 1)
if flow_to('lock') then
  redis.call('HSET', FLOW_KEY, 'reason', 'verification_locked')
  close_steps()
  event({type = 'flow_failed', reason = 'verification_locked'})
  return ended('locked', '')
end
return {'locked', ''}
"""

_CONFIRM = """
-- The producer saw step 0's send reach the broker: the flow is accepted. One that the timer
-- loop discarded meanwhile (its confirmation came too late) answered 'missing' above.
-- KEYS[7]: the wake-up list of a send that came first; KEYS[8]: an idempotency record to
-- write with the acceptance (ARGV[4] its value, ARGV[5] its seconds), or none.
redis.call('HSET', FLOW_KEY, 'enqueued', '1')
sset(0, 'queued_at', NOW)  -- step 0's send is in the queue now: see keys.claimed_through
count('flows_started')
if KEYS[8] then redis.call('SET', KEYS[8], ARGV[4], 'EX', tonumber(ARGV[5])) end
local early = get('early')
if early == 'waiting' then
  -- the send that came first waits for this: wake it, and it sends
  redis.call('RPUSH', KEYS[7], '1')
  redis.call('EXPIRE', KEYS[7], 60)
end
-- a send that came first and left ('gone'): the producer publishes it again
return {'confirmed', early == 'gone' and '1' or '0'}
"""

_EVENT = """
-- An event that changes no state (a webhook's outcome), stamped in Redis time.
event(cjson.decode(ARGV[4]))
return {'added', ''}
"""

_CREATE_FUNCTION = """
-- A new flow, all its keys at once, each with its TTL, its times in Redis time, and step 0's
-- timer: if its send is not claimed within the grace period, the timer loop sends it again
-- (or discards the flow, if its producer never confirmed it).
local function create(KEYS, ARGV)
  local FLOW_KEY, EVENTS_KEY, TIMERS_KEY = KEYS[1], KEYS[2], KEYS[3]
  local REQUEST_KEY, CODE_KEY = KEYS[4], KEYS[5]
  local flow_id, ttl, grace = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
  local fields, request, steps = cjson.decode(ARGV[4]), ARGV[5], tonumber(ARGV[6])
  local code, code_ttl = ARGV[7], tonumber(ARGV[8])
  local t = redis.call('TIME')
  local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
  local hash = {'created_at', now, 'updated_at', now}
  for name, value in pairs(fields) do
    hash[#hash + 1] = name
    hash[#hash + 1] = value
  end
  if code_ttl then
    hash[#hash + 1] = 'otp_expires_at'
    hash[#hash + 1] = now + code_ttl
  end
  redis.call('HSET', FLOW_KEY, unpack(hash))
  redis.call('EXPIRE', FLOW_KEY, ttl)
  redis.call('SET', REQUEST_KEY, request, 'EX', ttl)
  redis.call('RPUSH', EVENTS_KEY, cjson.encode({type = 'flow_created', ts = now, steps = steps}))
  redis.call('EXPIRE', EVENTS_KEY, ttl)
  if code ~= '' then redis.call('SET', CODE_KEY, code, 'EX', code_ttl) end
  redis.call('ZADD', TIMERS_KEY, now + grace, flow_id .. ':0')
  redis.call('EXPIRE', TIMERS_KEY, ttl)
end
"""

_ADMIT_FUNCTION = """
-- Abuse limits for a new flow, checked and taken in one step. KEYS: per recipient its rate
-- key (its flows in the window, scored by start time), its active key, its messages key
-- (flow id -> messages that flow may send it) and its wrong-code budget. ARGV: flow id,
-- window s, max flows per window, allow concurrent, ttl, max messages per window, max wrong
-- codes (0: the flow has no code, so none is checked), then per recipient this flow's
-- messages.
-- A flow's messages count while the flow is in the rate key: a flow released from it (never
-- accepted) or out of the window frees them too.
local function admit(KEYS, ARGV)
  local t = redis.call('TIME')
  local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
  local window, limit, budget = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[6])
  local wrong_codes = tonumber(ARGV[7])
  local function wait_until(started)
    return tostring(math.max(1, math.ceil(tonumber(started) + window - now)))
  end
  for i = 1, #KEYS, 4 do
    local rate, messages, failures = KEYS[i], KEYS[i + 2], KEYS[i + 3]
    local wanted = tonumber(ARGV[7 + (i + 3) / 4])
    if wanted > budget then return {'too_many_messages', tostring(budget)} end
    if wrong_codes > 0 and tonumber(redis.call('GET', failures) or '0') >= wrong_codes then
      return {'verify_blocked', tostring(math.max(redis.call('TTL', failures), 1))}
    end
    redis.call('ZREMRANGEBYSCORE', rate, '-inf', now - window)
    local flows = redis.call('ZRANGE', rate, 0, -1, 'WITHSCORES')
    if #flows / 2 >= limit then return {'rate_limited', wait_until(flows[2])} end
    local counts, sent = {}, 0
    for j = 1, #flows, 2 do
      counts[j] = tonumber(redis.call('HGET', messages, flows[j]) or '1')
      sent = sent + counts[j]
    end
    if sent + wanted > budget then
      -- the wait: until enough of the oldest flows leave the window
      for j = 1, #flows, 2 do
        sent = sent - counts[j]
        if sent + wanted <= budget then return {'message_limited', wait_until(flows[j + 1])} end
      end
    end
    if ARGV[4] ~= '1' then
      local other = redis.call('GET', KEYS[i + 1])
      if other then return {'active', other} end
    end
  end
  for i = 1, #KEYS, 4 do
    local rate, messages = KEYS[i], KEYS[i + 2]
    redis.call('ZADD', rate, now, ARGV[1])
    redis.call('EXPIRE', rate, math.ceil(window))
    for _, other in ipairs(redis.call('HKEYS', messages)) do
      if not redis.call('ZSCORE', rate, other) then redis.call('HDEL', messages, other) end
    end
    redis.call('HSET', messages, ARGV[1], ARGV[7 + (i + 3) / 4])
    redis.call('EXPIRE', messages, math.ceil(window))
    if ARGV[4] ~= '1' then redis.call('SET', KEYS[i + 1], ARGV[1], 'EX', tonumber(ARGV[5])) end
  end
  return {'ok', ''}
end
"""

_CREATE = _CREATE_FUNCTION + "return create(KEYS, ARGV)\n"

# Admit and create in one step, one round trip: KEYS are create's five, then admit's; ARGV[1]
# is how many of the rest are admit's, followed by admit's and then create's. Nothing is
# created for a flow the limits refuse.
_SUBMIT = (
    _ADMIT_FUNCTION
    + _CREATE_FUNCTION
    + """
local admit_args = tonumber(ARGV[1])
local verdict = admit({unpack(KEYS, 6, #KEYS)}, {unpack(ARGV, 2, 1 + admit_args)})
if verdict[1] == 'ok' then
  create({unpack(KEYS, 1, 5)}, {unpack(ARGV, 2 + admit_args, #ARGV)})
end
return verdict
"""
)

_TAKE_DUE = """
-- Take up to ARGV[1] due timers, each leased for ARGV[2] seconds: a worker that dies holding
-- one lets another take it then; two workers never take the same one. Also says when the
-- next timer is due (seconds from now, -1 for none), so the caller can sleep until then.
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[1]))
for _, member in ipairs(due) do
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), member)
end
local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
local next_in = -1
if first[2] then next_in = math.max(tonumber(first[2]) - now, 0) end
return {tostring(next_in), due}
"""

_LATER = """
-- A task to publish ARGV[2] seconds from now (Redis time), by the workers' timer loop;
-- with ARGV[4] = 'XX', only if it is still waiting there.
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
if ARGV[4] == 'XX' then
  redis.call('ZADD', KEYS[1], 'XX', now + tonumber(ARGV[2]), ARGV[1])
else
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
end
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[3]))
return tostring(now + tonumber(ARGV[2]))
"""

_CANCEL = """
if not flow_to('cancel') then return {'ignored', get('status')} end
close_steps()
event({type = 'flow_cancelled'})
return ended('cancelled', '')
"""


# what one step's callback token can make the store keep: reports recorded (each at most one
# timeline event), and raw reports kept for relaying (each up to the API's body limit)
MAX_REPORTS_PER_STEP = 50
MAX_KEPT_REPORTS_PER_STEP = 10
# a step resent again and again is queued behind a backlog, not lost: resend it rarely
MAX_RESEND_WAIT_SECONDS = 120.0


class FlowDiscarded(LookupError):
    """A producer confirmed a flow that the timer loop had already discarded, unconfirmed
    for longer than the grace period: it was never accepted, and nothing of it is sent."""


@dataclass(frozen=True)
class Outcome:
    """What a transition did: ``kind`` names it, ``detail`` carries its one value;
    ``notify`` says a switch has a caller webhook to tell."""

    kind: str
    detail: str = ""
    notify: bool = False

    @property
    def number(self) -> float:
        return float(self.detail)


@dataclass(frozen=True)
class Claim(Outcome):
    """A claim's outcome; a ``claimed`` one carries what the send needs."""

    request: FlowRequest | None = None
    code: str | None = None


@dataclass(frozen=True)
class Recorded(Outcome):
    """A delivery report's outcome; ``kept``: the index of its raw report, kept for the relay
    task, or None."""

    kept: int | None = None


@dataclass(frozen=True)
class Timer:
    """One entry of the timers index: a step to look at (``flow_id``, ``step``), or a task to
    publish (``task``, ``args``: ids and counters only, like every task's arguments)."""

    member: str
    flow_id: str = ""
    step: int = 0
    task: str = ""
    args: tuple[Any, ...] = ()

    @classmethod
    def parse(cls, member: str) -> Timer:
        """The entry as written by the store; anything else (a stray write) as neither."""
        try:
            if member.startswith("["):
                task, args = json.loads(member)
                return cls(member, task=str(task), args=tuple(args))
            flow_id, _, step = member.rpartition(":")
            return cls(member, flow_id=flow_id, step=int(step))
        except (ValueError, TypeError):
            return cls(member)

    @property
    def is_step(self) -> bool:
        return bool(self.flow_id)


@dataclass(frozen=True)
class StepView:
    index: int
    channel: str
    message_type: str
    timeout: int
    status: str
    provider: str | None = None
    message_id: str | None = None
    attempts: int = 0
    claimed_at: float | None = None
    accepted_at: float | None = None
    deadline: float | None = None
    ended_at: float | None = None
    dlr: str | None = None
    dlr_at: float | None = None
    reason: str | None = None


@dataclass(frozen=True)
class FlowView:
    """A flow's state as stored: ids, statuses and times; no recipient and no text."""

    flow_id: str
    workspace: str
    status: str
    current: int
    created_at: float
    updated_at: float
    ended_at: float | None
    delivered_step: int | None
    reason: str | None
    steps: list[StepView]
    events: list[dict[str, Any]] = field(default_factory=list)

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL_FLOW


def connect_redis(url: str) -> Redis:
    """The Redis client every OTPflow process uses: health-checked, with bounded timeouts."""
    return Redis.from_url(
        url,
        socket_connect_timeout=3,
        socket_timeout=5,
        health_check_interval=10,
        retry_on_timeout=True,
    )


def _task_member(task: str, args: list[Any]) -> str:
    return json.dumps([task, args], separators=(",", ":"))


def _text(item: bytes | str | int) -> str:
    return item.decode() if isinstance(item, bytes) else str(item)


def _float(value: str | None) -> float | None:
    return float(value) if value not in (None, "") else None


class FlowStore:
    """Reads flows and applies transitions; one instance per process, built at the edge."""

    def __init__(
        self, redis: Redis, keyring: Keyring, ttl_seconds: int, grace_seconds: float = 10.0
    ) -> None:
        self.redis = redis
        # names recipients in key names, makes and checks codes (see flow.keyring)
        self.keyring = keyring
        self.ttl_seconds = ttl_seconds
        # how long a step may stay unclaimed, or a taken timer unfinished, before recovery
        self.grace_seconds = grace_seconds
        self._scripts = {
            name: redis.register_script(_PRELUDE + body)
            for name, body in {
                "claim": _CLAIM,
                "accepted": _ACCEPTED,
                "send_error": _SEND_ERROR,
                "attempt_failed": _ATTEMPT_FAILED,
                "dlr": _DLR,
                "check": _CHECK,
                "cancel": _CANCEL,
                "verify_attempt": _VERIFY_ATTEMPT,
                "verified": _VERIFIED,
                "wrong_code": _WRONG_CODE,
                "confirm": _CONFIRM,
                "event": _EVENT,
            }.items()
        }
        self._submit = redis.register_script(_SUBMIT)
        self._take_due = redis.register_script(_TAKE_DUE)
        self._create = redis.register_script(_CREATE)
        self._later = redis.register_script(_LATER)

    # -- writing -------------------------------------------------------------------------

    def create(
        self,
        workspace: str,
        request: FlowRequest,
        flow_id: str | None = None,
        active_keys: tuple[str, ...] = (),
        verify_budget_keys: tuple[str, ...] = (),
    ) -> str:
        """Store a new flow (all keys at once, each with its TTL) and return its id.

        ``active_keys`` are the per-recipient markers :meth:`submit` sets, released when the
        flow ends; ``verify_budget_keys`` the recipients' wrong-code budgets
        (:meth:`verify_budget_keys`). A flow with an ``otp`` block gets its code's HMAC, kept
        only for the code's ``ttl`` (the code itself is made from the flow's id when sent).
        """
        flow_id = flow_id or str(uuid.uuid4())
        self._create(*self._creation(workspace, request, flow_id, active_keys, verify_budget_keys))
        return flow_id

    def _creation(
        self,
        workspace: str,
        request: FlowRequest,
        flow_id: str,
        active_keys: tuple[str, ...],
        verify_budget_keys: tuple[str, ...],
    ) -> tuple[list[str], list[str | int | float]]:
        """The keys and arguments of the create script (see :meth:`create`)."""
        wants = set(request.webhook_events) if request.webhook_url else set()
        fields: dict[str, str | int] = {
            "workspace": workspace,
            "status": FlowStatus.QUEUED.value,
            "current": 0,
            "steps": len(request.steps),
            "webhook": int("channel_switch" in wants),
            "terminal_hook": int("terminal" in wants),
            "enqueued": 0,
            "keyring": self.keyring.fingerprint,
        }
        if active_keys:
            fields["active"] = " ".join(active_keys)
        if verify_budget_keys and request.otp is not None:
            fields["verify_budget"] = " ".join(verify_budget_keys)
        if request.otp is not None:
            fields["otp_attempts_left"] = request.otp.max_attempts
        for index, step in enumerate(request.steps):
            fields[f"s{index}:channel"] = step.channel
            fields[f"s{index}:message_type"] = step.message_type
            fields[f"s{index}:timeout"] = step.timeout
            fields[f"s{index}:status"] = "pending"
            fields[f"s{index}:attempts"] = 0
            if getattr(step.data, "post_back_url", None):
                fields[f"s{index}:relay"] = 1
        return (
            [
                keys.flow(flow_id),
                keys.events(flow_id),
                keys.timers(),
                keys.request(flow_id),
                keys.code(flow_id),
            ],
            [
                flow_id,
                self.ttl_seconds,
                self.grace_seconds,
                json.dumps(fields),
                json.dumps(request.to_json_dict()),
                len(request.steps),
                self._code_check(flow_id, request),
                request.otp.ttl if request.otp is not None else "",
            ],
        )

    def _same_keys(self, flow_id: str, fingerprint: str) -> None:
        if fingerprint != self.keyring.fingerprint:
            raise KeyringMismatch(
                f"flow {flow_id} was stored with another OTPFLOW_SECRET: every OTPflow process "
                "(API, workers, your app's producers) must share one"
            )

    def _code_check(self, flow_id: str, request: FlowRequest) -> str:
        """What Redis keeps of the flow's code: an HMAC to check typed codes against."""
        if request.otp is None:
            return ""
        return self.keyring.code_check(flow_id, self.keyring.code(flow_id, request.otp.length))

    def submit(
        self,
        flow_id: str,
        workspace: str,
        request: FlowRequest,
        recipients: dict[str, int],
        limits: Limits,
        active_ttl: int,
    ) -> Outcome:
        """Check and take the abuse limits of a new flow for every recipient and, if they
        allow it, store the flow (as :meth:`create`): one script, one round trip.

        ``recipients`` maps each recipient (its limit key, see ``Payload.limit_key``; the
        same keys go to :meth:`release`) to the messages the flow may send it. Outcomes:
        ``ok`` (stored); ``rate_limited`` (too many flows) or ``message_limited`` (too many
        messages), detail: seconds to wait; ``too_many_messages`` (more than a window allows,
        however long one waits; detail: that maximum); ``active`` (detail: the flow already
        running for a recipient, unless the request allows concurrent flows);
        ``verify_blocked`` for a flow with a code to a recipient whose wrong codes spent their
        budget (detail: seconds to wait, see :meth:`verify`). Nothing is stored unless ``ok``.
        """
        ordered = sorted(recipients)
        ids = [self.keyring.recipient_id(address) for address in ordered]
        per_recipient = [
            (
                keys.recipient_rate(workspace, recipient),
                keys.active(workspace, recipient),
                keys.recipient_messages(workspace, recipient),
                keys.verify_failures(workspace, recipient),
            )
            for recipient in ids
        ]
        admit_args = [
            flow_id,
            limits.recipient_window_seconds,
            limits.recipient_flows,
            int(request.allow_concurrent),
            active_ttl,
            limits.recipient_messages,
            limits.verify_failures if request.otp is not None else 0,
            *(recipients[address] for address in ordered),
        ]
        active = () if request.allow_concurrent else tuple(group[1] for group in per_recipient)
        budgets = tuple(group[3] for group in per_recipient)
        create_keys, create_args = self._creation(workspace, request, flow_id, active, budgets)
        raw = self._submit(
            keys=[*create_keys, *(key for group in per_recipient for key in group)],
            args=[len(admit_args), *admit_args, *create_args],
        )
        kind, detail = (_text(item) for item in raw)
        return Outcome(kind, detail)

    def release(self, flow_id: str, workspace: str, addresses: set[str]) -> None:
        """Undo the limits :meth:`submit` took for a flow that was never accepted."""
        pipe = self.redis.pipeline(transaction=False)
        for recipient in map(self.keyring.recipient_id, addresses):
            pipe.zrem(keys.recipient_rate(workspace, recipient), flow_id)
            pipe.hdel(keys.recipient_messages(workspace, recipient), flow_id)
            active = keys.active(workspace, recipient)
            pipe.eval(
                "if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end",
                1,
                active,
                flow_id,
            )
        pipe.execute()

    def verify(self, flow_id: str, code: str, limits: Limits) -> Outcome:
        """Check a code the person typed: ``verified`` (the flow ends), ``wrong`` (detail:
        attempts left), ``locked``, ``expired``, ``already_verified``, or ``blocked`` (detail:
        seconds to wait) while a recipient's wrong codes across flows are over
        ``limits.verify_failures``."""
        raw = self._call("verify_attempt", flow_id, limits.verify_failures)
        kind, detail, *fingerprint = (_text(item) for item in raw)
        if kind != "compare":
            return Outcome(kind, detail)
        self._same_keys(flow_id, fingerprint[0])
        attempt = Outcome(kind, detail)
        typed = self.keyring.code_check(flow_id, code)
        if hmac.compare_digest(attempt.detail.encode(), typed.encode()):
            return self._run("verified", flow_id)
        return self._run("wrong_code", flow_id, limits.verify_failure_window_seconds)

    def verify_budget_keys(self, workspace: str, addresses: set[str]) -> tuple[str, ...]:
        """The wrong-code budgets of these recipients (see :meth:`verify`)."""
        return tuple(
            keys.verify_failures(workspace, self.keyring.recipient_id(address))
            for address in sorted(addresses)
        )

    def wait_confirmed(self, flow_id: str, seconds: float) -> bool:
        """Wait up to ``seconds`` for the producer to confirm a flow whose first send came
        before the confirmation (see :meth:`claim`); True if it did."""
        return self.redis.blpop([keys.confirmed(flow_id)], timeout=seconds) is not None

    def mark_enqueued(self, flow_id: str, remember: tuple[str, str, int] | None = None) -> bool:
        """The producer saw step 0's task reach the broker: the flow is accepted.

        Until then no step can be claimed, and the timer loop discards a flow left unmarked
        (its producer answered 503), so a flow is sent if and only if its caller was told yes.
        ``remember`` is ``(key, value, seconds)``, an idempotency record written in the same
        script: a flow is accepted exactly when its key says so.

        A worker quicker than this confirmation waits for it and is woken by it. Returns
        whether one came and left unclaimed (it waited in vain): the producer publishes step
        0's send again. Raises :class:`FlowDiscarded` when the timer loop discarded the flow
        first.
        """
        key, value, seconds = remember or (None, "", 0)
        waker = keys.confirmed(flow_id)
        raw = self._call(
            "confirm", flow_id, value, seconds, extra_keys=[waker, key] if key else [waker]
        )
        kind, early = (_text(item) for item in raw[:2])
        if kind == "missing":
            raise FlowDiscarded(flow_id)
        return early == "1"

    def delete(self, flow_id: str) -> None:
        """Remove a flow that could not be enqueued, so nothing stays half-stored."""
        pipe = self.redis.pipeline(transaction=True)
        pipe.delete(*keys.flow_keys(flow_id))
        pipe.zrem(keys.timers(), f"{flow_id}:0")
        pipe.execute()

    def _run(self, name: str, flow_id: str, *args: str | int | float) -> Outcome:
        kind, detail, *flag = (_text(item) for item in self._call(name, flow_id, *args))
        return Outcome(kind, detail, notify=flag == ["1"])

    def _call(
        self, name: str, flow_id: str, *args: str | int | float, extra_keys: Sequence[str] = ()
    ) -> list[Any]:
        return self._scripts[name](
            keys=[
                keys.flow(flow_id),
                keys.events(flow_id),
                keys.timers(),
                keys.request(flow_id),
                keys.metrics(),
                keys.claimed_through(),
                *extra_keys,
            ],
            args=[flow_id, self.ttl_seconds, self.grace_seconds, *args],
        )

    def claim(
        self, flow_id: str, step: int, attempt: int, lease_seconds: float, waited: bool = False
    ) -> Claim:
        """Take a step for sending: ``claimed`` (detail: seconds since its first claim, with
        the request and the code to send) for exactly one caller per attempt;
        ``already_claimed``, ``not_current``, ``not_enqueued`` or ``flow_ended`` otherwise.

        ``not_enqueued``: the producer has not confirmed the flow yet. The caller may wait for
        the confirmation (:meth:`wait_confirmed`) and claim again with ``waited``; if that
        claim is ``not_enqueued`` too, the producer publishes the send again as it confirms."""
        raw = self._call("claim", flow_id, step, attempt, lease_seconds, int(waited))
        kind, detail = (_text(item) for item in raw[:2])
        if kind != "claimed":
            return Claim(kind, detail)
        raw_request, code_check, fingerprint = (_text(item) for item in raw[3:6])
        request = FlowRequest.parse(json.loads(raw_request)) if raw_request else None
        code = None
        if request is not None and request.otp is not None and code_check:
            self._same_keys(flow_id, fingerprint)
            # made again from the flow's id: Redis holds only its HMAC, while it may be used
            code = self.keyring.code(flow_id, request.otp.length)
        return Claim(kind, detail, request=request, code=code)

    def accepted(
        self, flow_id: str, step: int, provider: str, message_id: str, timeout: int
    ) -> Outcome:
        """The provider accepted the step (counted in ``provider_sends``): ``sent`` with the
        timer's due time as detail; ``ignored`` if a report or a timer ended it meanwhile."""
        return self._run("accepted", flow_id, step, provider, message_id, timeout)

    def attempt_failed(
        self, flow_id: str, step: int, provider: str, reason: str, attempt: int
    ) -> Outcome:
        """Put a failed provider attempt on the timeline (the step goes on)."""
        return self._run("attempt_failed", flow_id, step, provider, reason, attempt)

    def send_error(self, flow_id: str, step: int, provider: str, reason: str) -> Outcome:
        """The step could not be sent: the flow moves on at once, ``switched`` (to the step in
        detail) or ``exhausted``; ``error`` if it had already moved on, ``ignored`` if the step
        had already ended."""
        return self._run("send_error", flow_id, step, provider, reason)

    def record_dlr(
        self,
        flow_id: str,
        step: int,
        status: DlrStatus,
        provider: str,
        message_id: str | None = None,
        raw: Any = None,
    ) -> Recorded:
        """Record a normalised report: ``delivered``; a failed report of the running step moves
        the flow on at once, ``switched`` (to the step in detail) or ``exhausted``; otherwise
        ``recorded``, ``late``, ``duplicate`` (this status of this provider message was
        recorded before) or ``too_many`` (the step's report budget is spent).

        ``raw``, the provider's own report, is kept in the same step if the step relays
        reports to its caller (bounded per step); ``kept`` is then its index for the relay
        task."""
        step_event = DLR_EVENTS[status]
        report = (
            json.dumps({"provider": provider, "status": status.value, "body": raw})
            if raw is not None
            else ""
        )
        answer = self._call(
            "dlr",
            flow_id,
            step,
            status.value,
            step_event.value if step_event else "",
            provider,
            " ".join((message_id or "").split())[:128],  # one line: it is a separator below
            MAX_REPORTS_PER_STEP,
            report,
            MAX_KEPT_REPORTS_PER_STEP,
            extra_keys=[keys.reports(flow_id)],
        )
        # a missing flow answers from the prelude, with two fields
        kind, detail, flag, kept = [*answer, "0", -1][:4]
        return Recorded(
            _text(kind),
            _text(detail),
            notify=_text(flag) == "1",
            kept=int(kept) if int(kept) >= 0 else None,
        )

    def report(self, flow_id: str, index: int) -> dict[str, Any] | None:
        raw = self.redis.lindex(keys.reports(flow_id), index)
        return json.loads(raw) if raw else None

    def check(self, flow_id: str, step: int) -> Outcome:
        """Decide a step whose timer is due: ``switched`` (to the step in detail) or
        ``exhausted`` when its deadline passed; ``resend`` (detail: how many times now) for a
        step whose send was lost (overtaken, see :func:`keys.claimed_through`), ``queued`` for
        one still waiting its turn; ``discarded`` for a flow never accepted; ``not_due``
        (seconds left) for a timer taken early; ``moved_on``, ``flow_ended`` or ``missing``:
        nothing to do.

        A resent step is looked at again after the grace period, doubling with every resend up
        to ``MAX_RESEND_WAIT_SECONDS``, so a backlog is fed a few duplicates, not one per look.
        """
        outcome = self._run("check", flow_id, step, MAX_RESEND_WAIT_SECONDS)
        if outcome.kind == "missing":
            self.redis.zrem(keys.timers(), f"{flow_id}:{step}")
        return outcome

    def take_due(self, limit: int, lease_seconds: float) -> tuple[list[Timer], float | None]:
        """Take up to ``limit`` due timers, each leased for ``lease_seconds`` (by Redis time:
        no two callers get the same one); also the seconds until the next one is due (None
        when there is none)."""
        next_in, members = self._take_due(keys=[keys.timers()], args=[limit, lease_seconds])
        wait = float(next_in)
        return [Timer.parse(member.decode()) for member in members], (wait if wait >= 0 else None)

    def later(self, task: str, args: list[Any], delay: float, only_waiting: bool = False) -> None:
        """Have the workers' timer loop publish ``task(*args)`` ``delay`` seconds from now
        (``only_waiting``: move it only if it is still in the index)."""
        self._later(
            keys=[keys.timers()],
            args=[_task_member(task, args), delay, self.ttl_seconds, "XX" if only_waiting else ""],
        )

    def forget(self, task: str, args: list[Any]) -> None:
        """Remove ``task(*args)`` from the timers index (it ran)."""
        self.redis.zrem(keys.timers(), _task_member(task, args))

    def timer_done(self, timer: Timer) -> None:
        """A taken task timer was published: remove it (a step timer's transition moves its
        own entry)."""
        self.redis.zrem(keys.timers(), timer.member)

    def cancel(self, flow_id: str) -> Outcome:
        return self._run("cancel", flow_id)

    def add_event(self, flow_id: str, event: dict[str, Any]) -> None:
        """Append an event that changes no state (webhook outcomes), if the flow still exists."""
        self._call("event", flow_id, json.dumps(event))

    # -- reading -------------------------------------------------------------------------

    def request_of(self, flow_id: str) -> FlowRequest | None:
        raw = self.redis.get(keys.request(flow_id))
        return FlowRequest.parse(json.loads(raw)) if raw else None

    def get(self, flow_id: str) -> FlowView | None:
        pipe = self.redis.pipeline(transaction=False)
        pipe.hgetall(keys.flow(flow_id))
        pipe.lrange(keys.events(flow_id), 0, -1)
        raw, events = pipe.execute()
        if not raw:
            return None
        h = {k.decode(): v.decode() for k, v in raw.items()}
        steps = [
            StepView(
                index=i,
                channel=h[f"s{i}:channel"],
                message_type=h.get(f"s{i}:message_type", ""),
                timeout=int(h[f"s{i}:timeout"]),
                status=h[f"s{i}:status"],
                provider=h.get(f"s{i}:provider"),
                message_id=h.get(f"s{i}:message_id"),
                attempts=int(h.get(f"s{i}:attempts", 0)),
                claimed_at=_float(h.get(f"s{i}:claimed_at")),
                accepted_at=_float(h.get(f"s{i}:accepted_at")),
                deadline=_float(h.get(f"s{i}:deadline")),
                ended_at=_float(h.get(f"s{i}:ended_at")),
                dlr=h.get(f"s{i}:dlr"),
                dlr_at=_float(h.get(f"s{i}:dlr_at")),
                reason=h.get(f"s{i}:reason"),
            )
            for i in range(int(h["steps"]))
        ]
        delivered_step = h.get("delivered_step")
        return FlowView(
            flow_id=flow_id,
            workspace=h["workspace"],
            status=h["status"],
            current=int(h["current"]),
            created_at=float(h["created_at"]),
            updated_at=float(h["updated_at"]),
            ended_at=_float(h.get("ended_at")),
            delivered_step=int(delivered_step) if delivered_step is not None else None,
            reason=h.get("reason"),
            steps=steps,
            events=[json.loads(e) for e in events],
        )
