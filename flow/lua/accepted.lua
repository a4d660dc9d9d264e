-- The provider accepted the step's message (FlowStore.accepted).
-- A transition: runs after the prelude (prelude.lua), with its KEYS and ARGV[1-3].
-- ARGV[4]: the step, ARGV[5]: the provider, ARGV[6]: its message id, ARGV[7]: the
-- step's DLR timeout in seconds, ARGV[8]: the step's providers in order, ARGV[9]: why this
-- one (JSON; both '' when known already).
-- Also reached: routing's statistics and breakers (routing.lua), the dashboard's counts.
local i, provider, message_id, timeout = tonumber(ARGV[4]), ARGV[5], ARGV[6], tonumber(ARGV[7])
count('provider_sends|provider=' .. provider .. '|channel=' .. sget(i, 'channel')
      .. '|result=accepted')
route_step(i, provider, 'sent')
if get('otp_attempts_left') then route_step(i, provider, 'codes') end
breaker_result(NOW, provider, sget(i, 'channel'), true)
sset(i, 'provider', provider)
dash_step(i, 'sent')
sset(i, 'message_id', message_id)
sset(i, 'accepted_at', NOW)
event({type = 'sent', step = i, channel = sget(i, 'channel'), provider = provider,
       message_id = message_id, route = route_note(i, ARGV[8], ARGV[9])})
if not step_to(i, 'accepted') then return {'ignored', sget(i, 'status')} end
set_deadline(i, NOW + timeout)
return {'sent', tostring(NOW + timeout)}
