-- The provider accepted the step's message (FlowStore.accepted).
-- A transition: runs after the prelude (prelude.lua), with its KEYS and ARGV[1-3].
-- ARGV[4]: the step, ARGV[5]: the provider, ARGV[6]: its message id, ARGV[7]: the
-- step's DLR timeout in seconds.
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
