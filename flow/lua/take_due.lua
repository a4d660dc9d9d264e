-- KEYS[1]: the timers index. ARGV[1]: how many to take, ARGV[2]: the lease in seconds.
-- Take up to ARGV[1] due timers, each leased for ARGV[2] seconds: a worker that dies holding
-- one lets another take it then; two workers never take the same one. Also says when the
-- next timer is due (seconds from now, -1 for none), so the caller can sleep until then.
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[1]))
for _, member in ipairs(due) do
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), member)
end
local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
local next_in = -1
if first[2] then next_in = math.max(tonumber(first[2]) - now, 0) end
return {tostring(next_in), due}
