-- A step's timer is due (FlowStore.check).
-- A transition: runs after the prelude (prelude.lua), with its KEYS and ARGV[1-3].
-- ARGV[4]: the step, ARGV[5]: the longest wait between resends in seconds.
-- Also reached: routing's statistics (route_step), the dashboard's counts and, as the flow
-- ends, the recipients' active markers (advance, prelude.lua).
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
if STEP_RUNNING[status] then
  local deadline = tonumber(sget(i, 'deadline'))
  if NOW < deadline then
    set_timer(i, deadline)  -- taken early (a lease ran out): put its real due time back
    return {'not_due', tostring(deadline - NOW)}
  end
  step_to(i, 'deadline')
  if status == 'sent' then
    route_step(i, sget(i, 'provider'), 'expired')
    return advance(i, SWITCH.TIMEOUT)
  end
  -- its send task vanished mid-send: never sent again, the next channel covers it
  sset(i, 'reason', SWITCH.SEND_LEASE_EXPIRED)
  return advance(i, SWITCH.SEND_LEASE_EXPIRED)
end
if status == 'failed' then
  local reason = DLR_POLICY[sget(i, 'dlr') or 'failed'][2]
  return advance(i, reason ~= '' and reason or SWITCH.DLR_FAILED)
end
if status == 'error' then return advance(i, SWITCH.SEND_ERROR) end
-- pending, a grace period after it became current, and never claimed
if i == 0 and get('enqueued') ~= '1' then
  -- its producer never saw the enqueue succeed and answered 503: the flow was never accepted
  clear_deadline(i)
  release_recipients()
  redis.call('DEL', FLOW_KEY, EVENTS_KEY, REQUEST_KEY, REPORTS_KEY, CODE_KEY, CONFIRMED_KEY)
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
