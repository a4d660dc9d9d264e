-- One provider attempt failed; the step may try again (FlowStore.attempt_failed).
-- A transition: runs after the prelude (prelude.lua), with its KEYS and ARGV[1-3].
-- ARGV[4]: the step, ARGV[5]: the provider, ARGV[6]: the reason, ARGV[7]: the attempt.
local i, provider, reason, attempt = tonumber(ARGV[4]), ARGV[5], ARGV[6], tonumber(ARGV[7])
event({type = 'attempt_failed', step = i, channel = sget(i, 'channel'), provider = provider,
       reason = reason, attempt = attempt})
return {'recorded', ''}
