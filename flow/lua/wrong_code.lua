-- The typed code was wrong (FlowStore.verify).
-- A transition: runs after the prelude (prelude.lua), with its KEYS and ARGV[1-3].
-- ARGV[4]: the window of the recipients' wrong-code budget in seconds.
-- Also reached: the recipients' wrong-code budgets (keys.verify_failures), named in the flow's
-- `verify_budget` field, and as the flow ends their active markers (close_steps, prelude.lua).
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
redis.call('DEL', CODE_KEY)
redis.call('HSET', FLOW_KEY, 'otp_locked', 1)
if flow_to('lock') then
  redis.call('HSET', FLOW_KEY, 'reason', 'verification_locked')
  close_steps()
  event({type = 'flow_failed', reason = 'verification_locked'})
  return ended('locked', '')
end
return {'locked', ''}
