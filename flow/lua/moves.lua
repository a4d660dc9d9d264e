-- The state machines' moves: a step or a flow changes status only along an edge of
-- flow/states.py's tables, rendered before this (STEP, FLOW, STEP_ENDED, FLOW_ENDED).
-- No KEYS or ARGV of its own: each takes the flow's hash (flow/keys.py, flow) as `flow_key`
-- and Redis's time as `now`, so the prelude's transitions and submit.lua share them.

-- Step i on event ev: its new status (and when it ended, if it did), or nil if not allowed.
local function move_step(flow_key, now, i, ev)
  local field = 's' .. i .. ':'
  local target = STEP[(redis.call('HGET', flow_key, field .. 'status') or '') .. '|' .. ev]
  if target then
    redis.call('HSET', flow_key, field .. 'status', target)
    if STEP_ENDED[target] then redis.call('HSET', flow_key, field .. 'ended_at', now) end
  end
  return target
end

-- The flow on event ev: its new status, or nil if not allowed; and its status before.
local function move_flow(flow_key, now, ev)
  local before = redis.call('HGET', flow_key, 'status') or ''
  local target = FLOW[before .. '|' .. ev]
  if target then
    redis.call('HSET', flow_key, 'status', target, 'updated_at', now)
    if FLOW_ENDED[target] then redis.call('HSET', flow_key, 'ended_at', now) end
  end
  return target, before
end
