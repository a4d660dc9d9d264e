-- A timeline event that changes no state (FlowStore.add_event).
-- A transition: runs after the prelude (prelude.lua), with its KEYS and ARGV[1-3].
-- ARGV[4]: the event as JSON.
-- An event that changes no state (a webhook's outcome), stamped in Redis time.
event(cjson.decode(ARGV[4]))
return {'added', ''}
