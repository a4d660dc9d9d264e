-- A flow's code was verified (OTPflow's verify, or the caller's feedback): it counts as
-- converted for each fraud scope it was screened in, once, if its chance had not yet ended,
-- and for the routing statistics of the provider that carried the code.
-- KEYS: the flow, then per scope its conversion hash and its pending codes. ARGV: the flow
-- id, the conversion bucket s, the conversion window s. Returns 1 the first time, else 0.
-- Also reached: a routing statistics bucket (route_count, routing.lua).
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if redis.call('HSETNX', KEYS[1], 'converted', 1) == 0 then return 0 end
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local bucket = math.floor(now / tonumber(ARGV[2]))
-- routing: a code entered right counts for the provider of the step that delivered it (or
-- the last one sent, if no report came first); routing.lua comes before this script
local step = redis.call('HGET', KEYS[1], 'delivered_step') or redis.call('HGET', KEYS[1], 'current')
local function field(name) return redis.call('HGET', KEYS[1], 's' .. step .. ':' .. name) end
if step and field('provider') then
  route_count(now, field('provider'), field('channel'), field('country') or 'ZZ', 'verified')
end
for i = 2, #KEYS, 2 do
  if redis.call('ZREM', KEYS[i + 1], ARGV[1]) == 1 then
    redis.call('HINCRBY', KEYS[i], 'c:' .. bucket, 1)
    redis.call('HINCRBY', KEYS[i], 'v:' .. bucket, 1)
    redis.call('EXPIRE', KEYS[i], tonumber(ARGV[3]))
  end
end
return 1
