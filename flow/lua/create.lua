-- A new flow, all its keys at once, each with its TTL, its times in Redis time, and step 0's
-- timer: if its send is not claimed within the grace period, the timer loop sends it again
-- (or discards the flow, if its producer never confirmed it).
-- KEYS: the flow, its events, the timers index, its request, its code's HMAC. ARGV: the flow id,
-- the TTL, the grace in seconds, the flow's fields as JSON, the request as JSON, its steps,
-- the code's HMAC ('' for none), the code's TTL ('' for none).
local function create(KEYS, ARGV)
  local FLOW_KEY, EVENTS_KEY, TIMERS_KEY = KEYS[1], KEYS[2], KEYS[3]
  local REQUEST_KEY, CODE_KEY = KEYS[4], KEYS[5]
  local flow_id, ttl, grace = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
  local fields, request, steps = cjson.decode(ARGV[4]), ARGV[5], tonumber(ARGV[6])
  local code, code_ttl = ARGV[7], tonumber(ARGV[8])
  local t = redis.call('TIME')
  local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
  local hash = {'created_at', now, 'updated_at', now}
  for name, value in pairs(fields) do
    hash[#hash + 1] = name
    hash[#hash + 1] = value
  end
  if code_ttl then
    hash[#hash + 1] = 'otp_expires_at'
    hash[#hash + 1] = now + code_ttl
  end
  redis.call('HSET', FLOW_KEY, unpack(hash))
  redis.call('EXPIRE', FLOW_KEY, ttl)
  redis.call('SET', REQUEST_KEY, request, 'EX', ttl)
  local created = {type = 'flow_created', ts = now, steps = steps}
  -- channelOrder auto moved the caller's steps: the order they came in, and why
  if fields.reordered then created.reordered = cjson.decode(fields.reordered) end
  redis.call('RPUSH', EVENTS_KEY, cjson.encode(created))
  redis.call('EXPIRE', EVENTS_KEY, ttl)
  if code ~= '' then redis.call('SET', CODE_KEY, code, 'EX', code_ttl) end
  redis.call('ZADD', TIMERS_KEY, now + grace, flow_id .. ':0')
  redis.call('EXPIRE', TIMERS_KEY, ttl)
end
