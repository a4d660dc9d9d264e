-- KEYS[1]: the timers index. ARGV[1]: the entry, ARGV[2]: its delay in seconds, ARGV[3]:
-- the index's TTL, ARGV[4]: 'XX' to move an entry only if it is still there.
-- A task to publish ARGV[2] seconds from now (Redis time), by the workers' timer loop;
-- with ARGV[4] = 'XX', only if it is still waiting there.
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
if ARGV[4] == 'XX' then
  redis.call('ZADD', KEYS[1], 'XX', now + tonumber(ARGV[2]), ARGV[1])
else
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
end
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[3]))
return tostring(now + tonumber(ARGV[2]))
