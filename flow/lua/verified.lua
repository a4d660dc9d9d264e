-- The typed code was right (FlowStore.verify).
-- A transition: runs after the prelude (prelude.lua), with its KEYS and ARGV[1-3].
-- No ARGV of its own. Also reached: the recipients' active markers (close_steps, prelude.lua).
if not flow_to('verify') then return {'ignored', get('status')} end
redis.call('DEL', CODE_KEY)
close_steps()
count('verifications|result=verified')
event({type = 'flow_verified'})
return ended('verified', '')
