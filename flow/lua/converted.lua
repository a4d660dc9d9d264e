-- A flow's code was verified (OTPflow's verify, or the caller's feedback): it counts as
-- converted for each fraud scope it was screened in, once, if its chance had not yet ended.
-- KEYS: the flow, then per scope its conversion hash and its pending codes. ARGV: the flow
-- id, the conversion bucket s, the conversion window s. Returns 1 the first time, else 0.
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if redis.call('HSETNX', KEYS[1], 'converted', 1) == 0 then return 0 end
local t = redis.call('TIME')
local bucket = math.floor((tonumber(t[1]) + tonumber(t[2]) / 1000000) / tonumber(ARGV[2]))
for i = 2, #KEYS, 2 do
  if redis.call('ZREM', KEYS[i + 1], ARGV[1]) == 1 then
    redis.call('HINCRBY', KEYS[i], 'c:' .. bucket, 1)
    redis.call('HINCRBY', KEYS[i], 'v:' .. bucket, 1)
    redis.call('EXPIRE', KEYS[i], tonumber(ARGV[3]))
  end
end
return 1
