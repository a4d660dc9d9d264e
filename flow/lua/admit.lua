-- Abuse limits for a new flow, checked and taken in one step. KEYS: per recipient its rate
-- key (its flows in the window, scored by start time), its active key, its messages key
-- (flow id -> messages that flow may send it) and its wrong-code budget. ARGV: flow id,
-- window s, max flows per window, allow concurrent, ttl, max messages per window, max wrong
-- codes (0: the flow has no code, so none is checked), then per recipient this flow's
-- messages.
-- A flow's messages count while the flow is in the rate key: a flow released from it (never
-- accepted) or out of the window frees them too.
local function admit(KEYS, ARGV)
  local t = redis.call('TIME')
  local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
  local window, limit, budget = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[6])
  local wrong_codes = tonumber(ARGV[7])
  local function wait_until(started)
    return tostring(math.max(1, math.ceil(tonumber(started) + window - now)))
  end
  for i = 1, #KEYS, 4 do
    local rate, messages, failures = KEYS[i], KEYS[i + 2], KEYS[i + 3]
    local wanted = tonumber(ARGV[7 + (i + 3) / 4])
    if wanted > budget then return {'too_many_messages', tostring(budget)} end
    if wrong_codes > 0 and tonumber(redis.call('GET', failures) or '0') >= wrong_codes then
      return {'verify_blocked', tostring(math.max(redis.call('TTL', failures), 1))}
    end
    redis.call('ZREMRANGEBYSCORE', rate, '-inf', now - window)
    local flows = redis.call('ZRANGE', rate, 0, -1, 'WITHSCORES')
    if #flows / 2 >= limit then return {'rate_limited', wait_until(flows[2])} end
    local counts, sent = {}, 0
    for j = 1, #flows, 2 do
      counts[j] = tonumber(redis.call('HGET', messages, flows[j]) or '1')
      sent = sent + counts[j]
    end
    if sent + wanted > budget then
      -- the wait: until enough of the oldest flows leave the window
      for j = 1, #flows, 2 do
        sent = sent - counts[j]
        if sent + wanted <= budget then return {'message_limited', wait_until(flows[j + 1])} end
      end
    end
    if ARGV[4] ~= '1' then
      local other = redis.call('GET', KEYS[i + 1])
      if other then return {'active', other} end
    end
  end
  for i = 1, #KEYS, 4 do
    local rate, messages = KEYS[i], KEYS[i + 2]
    redis.call('ZADD', rate, now, ARGV[1])
    redis.call('EXPIRE', rate, math.ceil(window))
    for _, other in ipairs(redis.call('HKEYS', messages)) do
      if not redis.call('ZSCORE', rate, other) then redis.call('HDEL', messages, other) end
    end
    redis.call('HSET', messages, ARGV[1], ARGV[7 + (i + 3) / 4])
    redis.call('EXPIRE', messages, math.ceil(window))
    if ARGV[4] ~= '1' then redis.call('SET', KEYS[i + 1], ARGV[1], 'EX', tonumber(ARGV[5])) end
  end
  return {'ok', ''}
end
