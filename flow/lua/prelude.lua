-- What every transition script starts with (after what flow/scripts.py renders and loads
-- first: the tables of flow/states.py, moves.lua, metrics.lua, routing.lua, dashboard.lua).
-- KEYS: the flow, its events, the timers index, its request, the metrics, the claimed-through
-- mark, its code's HMAC, its kept reports, its confirmation wake-up (flow/keys.py); a
-- script's own keys from KEYS[10]. ARGV[1]: the flow id, ARGV[2]: the TTL, ARGV[3]: the
-- grace in seconds; a script's own arguments from ARGV[4].
-- Also reached: the recipients' active markers (keys.active) named in the flow's `active`
-- field (release_recipients), routing's statistics and breakers (route_step, routing.lua)
-- and the dashboard's counts (dash_step, dashboard.lua), named by the rendered builders.
local FLOW_KEY, EVENTS_KEY, TIMERS_KEY, REQUEST_KEY = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local METRICS_KEY = KEYS[5]
local CLAIMED_KEY, CODE_KEY, REPORTS_KEY, CONFIRMED_KEY = KEYS[6], KEYS[7], KEYS[8], KEYS[9]
local FLOW_ID = ARGV[1]
local TTL = tonumber(ARGV[2])
-- how long a step may wait unclaimed, or a leased timer stay taken, before it is recovered
local GRACE = tonumber(ARGV[3])
local t = redis.call('TIME')
local NOW = tonumber(t[1]) + tonumber(t[2]) / 1000000

local function get(name) return redis.call('HGET', FLOW_KEY, name) end
local function sget(i, name) return redis.call('HGET', FLOW_KEY, 's' .. i .. ':' .. name) end
local function sset(i, name, value) redis.call('HSET', FLOW_KEY, 's' .. i .. ':' .. name, value) end

-- The shared counters (metrics.lua), in this flow's metrics hash.
local function count(name) metrics_count(METRICS_KEY, name) end
local function observe_latency(labels, seconds)
  metrics_observe_latency(METRICS_KEY, labels, seconds)
end

local function event(ev)
  ev.ts = NOW
  redis.call('RPUSH', EVENTS_KEY, cjson.encode(ev))
end

-- Routing statistics of step i's (provider, channel, country): see routing.lua.
local function route_step(i, provider, counter)
  local got = redis.call('HMGET', FLOW_KEY, 's' .. i .. ':channel', 's' .. i .. ':country')
  route_count(NOW, provider, got[1], got[2] or 'ZZ', counter)
end

-- Step i's channel, provider and country, as the dashboard's counts name them
-- (and the workspace, whose counts they are), in one read.
local function dash_route(i)
  local p = 's' .. i .. ':'
  local got = redis.call('HMGET', FLOW_KEY, p .. 'channel', p .. 'provider', p .. 'country',
                         'workspace')
  return got[1] .. '|' .. (got[2] or '') .. '|' .. (got[3] or 'ZZ'), got[4] or ''
end

-- The dashboard's counts of step i (see dashboard.lua): what, channel, provider, country.
local function dash_step(i, what)
  local route, workspace = dash_route(i)
  dash_count(NOW, workspace, what .. '|' .. route)
end

-- Step i delivered the flow: counted, with the flow's time to deliver.
local function dash_delivered(i)
  local route, workspace = dash_route(i)
  dash_count(NOW, workspace, 'delivered|' .. route)
  dash_time_to_deliver(NOW, workspace, route, NOW - tonumber(get('created_at') or NOW))
end

-- Why step i's provider was chosen (the worker's router, as JSON), for its timeline event;
-- the step keeps the order of its providers ('a b') for its later attempts (claim.lua).
local function route_note(i, order, why)
  if order ~= '' and not sget(i, 'route') then sset(i, 'route', order) end
  if why ~= '' then return cjson.decode(why) end
  return nil
end

-- The moves of moves.lua, on this flow now.
local function step_to(i, ev) return move_step(FLOW_KEY, NOW, i, ev) end

local function flow_to(ev)
  local target, before = move_flow(FLOW_KEY, NOW, ev)
  -- counted once, at the first end (delivered then verified is one delivered flow)
  if target and FLOW_ENDED[target] and not FLOW_ENDED[before] then
    count('flows_ended|outcome=' .. target)
  end
  return target
end

-- The step's timer: when the workers' timer loop must look at it again.
local function set_timer(i, at)
  redis.call('ZADD', TIMERS_KEY, at, FLOW_ID .. ':' .. i)
  redis.call('EXPIRE', TIMERS_KEY, TTL)
end

-- A deadline the step must meet (its send lease, then its DLR timeout), with its timer.
local function set_deadline(i, at)
  sset(i, 'deadline', at)
  set_timer(i, at)
end

local function clear_deadline(i)
  redis.call('ZREM', TIMERS_KEY, FLOW_ID .. ':' .. i)
end

-- The recipients may start a new flow now (the markers submit set, if still this flow's).
local function release_recipients()
  for key in string.gmatch(get('active') or '', '%S+') do
    if redis.call('GET', key) == FLOW_ID then redis.call('DEL', key) end
  end
end

-- The flow has ended: later steps that never started are skipped, no deadline remains.
local function close_steps()
  local n = tonumber(get('steps'))
  for i = 0, n - 1 do
    clear_deadline(i)
    step_to(i, 'skip')
  end
  release_recipients()
  -- a code can still be entered after delivery; after anything else it is of no more use
  local status = get('status')
  if status ~= 'delivered' then redis.call('DEL', CODE_KEY) end
end

local function ended(kind, detail)
  return {kind, detail, get('terminal_hook') or '0'}
end

-- Step i has ended without delivery: move to the next step, or fail the flow.
local function advance(i, reason)
  clear_deadline(i)
  local n = tonumber(get('steps'))
  local from_status = sget(i, 'status')
  if i + 1 < n then
    redis.call('HSET', FLOW_KEY, 'current', i + 1, 'updated_at', NOW)
    -- its send is queued now (the caller publishes it); a grace period on, see _CHECK
    sset(i + 1, 'queued_at', NOW)
    set_timer(i + 1, NOW + GRACE)
    dash_step(i, 'switch')
    event({type = 'channel_switch', step = i, to_step = i + 1, status = from_status,
           reason = reason, channel = sget(i, 'channel'), to_channel = sget(i + 1, 'channel')})
    count('channel_switches|from_channel=' .. sget(i, 'channel') .. '|to_channel='
          .. sget(i + 1, 'channel') .. '|reason=' .. reason)
    return {'switched', tostring(i + 1), get('webhook') or '0'}
  end
  flow_to('exhaust')
  redis.call('HSET', FLOW_KEY, 'reason', reason)
  close_steps()
  event({type = 'flow_failed', step = i, status = from_status, reason = reason})
  return ended('exhausted', '')
end

if redis.call('EXISTS', FLOW_KEY) == 0 then return {'missing', ''} end
