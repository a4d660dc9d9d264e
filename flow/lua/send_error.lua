-- The step could not be sent: the flow moves on (FlowStore.send_error).
-- A transition: runs after the prelude (prelude.lua), with its KEYS and ARGV[1-3].
-- ARGV[4]: the step, ARGV[5]: the provider ('' for none), ARGV[6]: the reason, ARGV[7]: the
-- routing counter of this provider's attempt ('' if attempt_failed counted it), ARGV[8]: the
-- step's providers in order, ARGV[9]: why this one (JSON; both '' when known already).
-- Also reached: routing's statistics and breakers (routing.lua), the dashboard's counts and,
-- as the flow ends, the recipients' active markers (advance, prelude.lua).
local i, provider, reason = tonumber(ARGV[4]), ARGV[5], ARGV[6]
local why = route_note(i, ARGV[8], ARGV[9])
if provider ~= '' then sset(i, 'provider', provider) end
if provider ~= '' and ARGV[7] ~= '' then
  route_step(i, provider, ARGV[7])
  breaker_result(NOW, provider, sget(i, 'channel'), false)
end
sset(i, 'reason', reason)
if not step_to(i, 'send_error') then return {'ignored', sget(i, 'status')} end
event({type = 'send_error', step = i, channel = sget(i, 'channel'), provider = provider,
       reason = reason, route = why})
-- the step is over: the next channel starts now
if FLOW_ENDED[get('status')] or tonumber(get('current')) ~= i then return {'error', ''} end
return advance(i, SWITCH.SEND_ERROR)
