-- A normalised delivery report (FlowStore.record_dlr).
-- A transition: runs after the prelude (prelude.lua), with its KEYS and ARGV[1-3].
-- ARGV[4]: the step, ARGV[5]: the status (what it does: DLR_POLICY), ARGV[6]: the provider,
-- ARGV[7]: its message id, ARGV[8]: the most reports a step records, ARGV[9]: the raw report
-- to keep for relaying ('' for none), ARGV[10]: the most a step keeps, ARGV[11]: the
-- provider's own status word ('' if none).
-- Returned fourth: the index of the kept raw report, or -1.
-- Also reached: routing's statistics, the dashboard's counts and, as the flow ends, the
-- recipients' active markers (prelude.lua).
local i, dlr, provider = tonumber(ARGV[4]), ARGV[5], ARGV[6]
local message_id, max_reports = ARGV[7], tonumber(ARGV[8])
local step_event, switch_reason = DLR_POLICY[dlr][1], DLR_POLICY[dlr][2]
local before = sget(i, 'status')
if not before or STEP_UNSENT[before] then
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
if ARGV[9] ~= '' and sget(i, 'relay') == '1'
    and redis.call('HINCRBY', FLOW_KEY, 's' .. i .. ':kept', 1) <= tonumber(ARGV[10]) then
  kept = redis.call('RPUSH', REPORTS_KEY, ARGV[9]) - 1
  redis.call('EXPIRE', REPORTS_KEY, TTL)
end
local function apply()
local seen, this = sget(i, 'dlr_seen') or '\n', dlr .. ' ' .. message_id .. '\n'
if string.find(seen, '\n' .. this, 1, true) then return {'duplicate', ''} end
sset(i, 'dlr_seen', seen .. this)
sset(i, 'dlr', dlr)
sset(i, 'dlr_at', NOW)
local sent_at = tonumber(sget(i, 'accepted_at') or sget(i, 'claimed_at'))
if step_event ~= '' and not sget(i, 'final_dlr_at') and sent_at then
  -- the first final report of the step, on time or late, is its delivery latency
  sset(i, 'final_dlr_at', NOW)
  local outcome = 'failed'
  if step_event == 'dlr_delivered' then outcome = 'delivered' end
  local latency = math.max(NOW - sent_at, 0)
  observe_latency('channel=' .. sget(i, 'channel') .. '|provider=' .. provider
                  .. '|outcome=' .. outcome, latency)
  -- routing: what the step's provider did while the step ran (a timeout counted the rest)
  local running = STEP_RUNNING[before]
  if outcome == 'delivered' then
    route_step(i, provider, running and 'delivered' or 'late')
    route_latency(NOW, provider, sget(i, 'channel'), sget(i, 'country') or 'ZZ', latency)
  elseif running then
    route_step(i, provider, 'failed')
  end
end
local flow_status = get('status')
local ev = {type = 'dlr', step = i, channel = sget(i, 'channel'), provider = provider, status = dlr}
if ARGV[11] and ARGV[11] ~= '' then ev.provider_status = ARGV[11] end
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
    dash_delivered(i)
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
    dash_delivered(i)
    close_steps()
    event({type = 'flow_delivered', step = i})
    return ended('delivered', '')
  end
  return {'recorded', ''}
end
-- failed: the next channel starts now instead of at the timeout
if FLOW_ENDED[flow_status] or tonumber(get('current')) ~= i then return {'recorded', ''} end
return advance(i, switch_reason)
end
local result = apply()
return {result[1], result[2], result[3] or '0', kept}
