-- A typed code to check (FlowStore.verify).
-- A transition: runs after the prelude (prelude.lua), with its KEYS and ARGV[1-3].
-- ARGV[4]: the wrong codes a recipient may enter in the budget's window.
-- Also read: the recipients' wrong-code budgets (keys.verify_failures), named in the flow's
-- `verify_budget` field.
-- Spend one attempt and hand back the code to compare (in constant time, by the caller).
local code = redis.call('GET', CODE_KEY)
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
