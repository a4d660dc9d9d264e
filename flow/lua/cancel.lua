-- End a flow now (FlowStore.cancel).
-- A transition: runs after the prelude (prelude.lua), with its KEYS and ARGV[1-3].
-- No ARGV of its own. Also reached: the recipients' active markers (close_steps, prelude.lua).
if not flow_to('cancel') then return {'ignored', get('status')} end
close_steps()
event({type = 'flow_cancelled'})
return ended('cancelled', '')
