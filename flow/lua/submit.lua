-- Screen, admit and create in one step, one round trip (after the state tables, moves.lua,
-- metrics.lua, admit.lua, create.lua and fraud.lua). KEYS: create's five, the fraud guard's,
-- then admit's. ARGV: how many of the rest are admit's, how many keys and arguments are the
-- fraud guard's (0: nothing to screen), then admit's arguments, the guard's, create's.
-- Nothing is created for a flow the guard or the limits refuse, except in shadow mode: a
-- flow that ends at once, 'blocked', sent nothing.
local admit_n, fraud_keys_n, fraud_n = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local create_keys = {unpack(KEYS, 1, 5)}
local fraud_keys = {unpack(KEYS, 6, 5 + fraud_keys_n)}
local admit_keys = {unpack(KEYS, 6 + fraud_keys_n, #KEYS)}
local admit_args = {unpack(ARGV, 4, 3 + admit_n)}
local fraud_args = {unpack(ARGV, 4 + admit_n, 3 + admit_n + fraud_n)}
local create_args = {unpack(ARGV, 4 + admit_n + fraud_n, #ARGV)}
local FLOW_KEY, EVENTS_KEY, TIMERS_KEY, CODE_KEY = KEYS[1], KEYS[2], KEYS[3], KEYS[5]

local screened = fraud_n > 0 and screen(fraud_keys, fraud_args) or {}
if screened[1] == 'fraud_refused' then
  if fraud_args[1] ~= 'shadow' then return {'fraud_refused', screened[2]} end
  -- shadow: the caller is told yes; the flow ends now, blocked, and nothing is ever sent
  create(create_keys, create_args)
  local now = fraud_now()
  -- moved, not counted in flows_ended: it never started (fraud_blocked counts it)
  move_flow(FLOW_KEY, now, 'block')
  redis.call('HSET', FLOW_KEY, 'reason', screened[2])
  for i = 0, tonumber(create_args[6]) - 1 do move_step(FLOW_KEY, now, i, 'skip') end
  redis.call('ZREM', TIMERS_KEY, create_args[1] .. ':0')
  redis.call('DEL', CODE_KEY)
  redis.call('RPUSH', EVENTS_KEY, cjson.encode(
    {type = 'fraud_blocked', reason = screened[2], country = screened[3], ts = now}))
  return {'fraud_shadowed', screened[2]}
end
local verdict = admit(admit_keys, admit_args)
if verdict[1] ~= 'ok' then return verdict end
create(create_keys, create_args)
if fraud_n > 0 then
  redis.call('HSET', FLOW_KEY, 'fraud_scopes', count_screened(fraud_keys, fraud_args))
end
if screened[1] == 'fraud_monitored' then
  redis.call('RPUSH', EVENTS_KEY, cjson.encode(
    {type = 'fraud_monitored', reason = screened[2], country = screened[3], ts = fraud_now()}))
end
return {'ok', ''}
