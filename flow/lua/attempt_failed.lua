-- One provider attempt failed; the step may try again (FlowStore.attempt_failed).
-- A transition: runs after the prelude (prelude.lua), with its KEYS and ARGV[1-3].
-- ARGV[4]: the step, ARGV[5]: the provider, ARGV[6]: the reason, ARGV[7]: the attempt,
-- ARGV[8]: the routing counter (error, timeout or rejected: the message's own fault, no mark
-- against the provider's breaker), ARGV[9]: the step's providers in order, ARGV[10]: why
-- this one (JSON; both '' when known already).
-- Also reached: routing's statistics and breakers (routing.lua).
local i, provider, reason, attempt = tonumber(ARGV[4]), ARGV[5], ARGV[6], tonumber(ARGV[7])
route_step(i, provider, ARGV[8])
if ARGV[8] ~= 'rejected' then breaker_result(NOW, provider, sget(i, 'channel'), false) end
event({type = 'attempt_failed', step = i, channel = sget(i, 'channel'), provider = provider,
       reason = reason, attempt = attempt, route = route_note(i, ARGV[9], ARGV[10])})
return {'recorded', ''}
