-- The fraud guard's screening of a new flow (otpflow/flow/fraud.py says what each rule does),
-- used by submit.lua. KEYS: the workspace's blocks index, the metrics, then per phone recipient
-- its prefix's velocity hits, block, conversion and pending codes, and its country's block,
-- hourly counts, conversion and pending codes (flow/keys.py); and the flows of pending codes
-- whose chance has ended (flow_key, from flow/keys.py). ARGV: mode, flow id, block
-- seconds, prefix limit, prefix window s, min conversion, min volume, conversion window s,
-- bucket s; then per recipient: its prefix (digits, for the operator), the
-- prefix's scope id, its country, exempt ('1'), a reason refused by the number alone (''),
-- the country's hourly cap (0: none), the seconds its code has to be verified (0: none).
local FRAUD_HEAD, FRAUD_KEYS_EACH, FRAUD_ARGS_EACH = 9, 8, 7

local function fraud_now()
  local t = redis.call('TIME')
  return tonumber(t[1]) + tonumber(t[2]) / 1000000
end

local function fraud_config(KEYS, ARGV)
  local c = {
    blocks = KEYS[1], metrics = KEYS[2], mode = ARGV[1], flow_id = ARGV[2],
    block_seconds = tonumber(ARGV[3]), prefix_limit = tonumber(ARGV[4]),
    prefix_window = tonumber(ARGV[5]), min_conversion = tonumber(ARGV[6]),
    min_volume = tonumber(ARGV[7]), window = tonumber(ARGV[8]), bucket = tonumber(ARGV[9]),
    now = fraud_now(), recipients = {},
  }
  for i = 1, (#ARGV - FRAUD_HEAD) / FRAUD_ARGS_EACH do
    local k, a = 2 + (i - 1) * FRAUD_KEYS_EACH, FRAUD_HEAD + (i - 1) * FRAUD_ARGS_EACH
    c.recipients[i] = {
      prefix = {
        hits = KEYS[k + 1], block = KEYS[k + 2], conversion = KEYS[k + 3], pending = KEYS[k + 4],
        id = ARGV[a + 2], value = ARGV[a + 1], kind = 'prefix',
      },
      country = {
        block = KEYS[k + 5], rate = KEYS[k + 6], conversion = KEYS[k + 7], pending = KEYS[k + 8],
        id = 'country-' .. ARGV[a + 3], value = ARGV[a + 3], kind = 'country',
      },
      region = ARGV[a + 3], exempt = ARGV[a + 4] == '1', static = ARGV[a + 5],
      country_limit = tonumber(ARGV[a + 6]), chance = tonumber(ARGV[a + 7]),
    }
  end
  return c
end

-- whether a flow's code reached its person: not if the flow ended failed or cancelled before
-- any step was delivered (a flow already gone is given the benefit of the doubt: it counts)
local function had_chance(flow_id)
  local flow = redis.call('HMGET', flow_key(flow_id), 'delivered_step', 'status')
  return flow[1] or not FRAUD_NO_CHANCE[flow[2]]
end

-- codes whose chance has ended move from pending into the bucket of when it ended
local function settle(c, scope)
  local ended = redis.call('ZRANGEBYSCORE', scope.pending, '-inf', c.now, 'WITHSCORES')
  for j = 1, #ended, 2 do
    if had_chance(ended[j]) then
      local bucket = math.floor(tonumber(ended[j + 1]) / c.bucket)
      redis.call('HINCRBY', scope.conversion, 'c:' .. bucket, 1)
    end
  end
  if #ended > 0 then
    redis.call('ZREMRANGEBYSCORE', scope.pending, '-inf', c.now)
    redis.call('EXPIRE', scope.conversion, c.window)
  end
end

-- codes that had their chance in the window, and those verified; buckets older than the
-- window are dropped, so the hash holds one window at most
local function conversion(c, scope)
  settle(c, scope)
  local current, buckets = math.floor(c.now / c.bucket), math.floor(c.window / c.bucket)
  local fields = {}
  for b = current - buckets + 1, current do
    fields[#fields + 1] = 'c:' .. b
    fields[#fields + 1] = 'v:' .. b
  end
  local values = redis.call('HMGET', scope.conversion, unpack(fields))
  local chances, verified = 0, 0
  for j = 1, #values, 2 do
    chances = chances + tonumber(values[j] or '0')
    verified = verified + tonumber(values[j + 1] or '0')
  end
  if redis.call('HLEN', scope.conversion) > 2 * buckets + 4 then
    for _, name in ipairs(redis.call('HKEYS', scope.conversion)) do
      if tonumber(string.sub(name, 3)) <= current - buckets then
        redis.call('HDEL', scope.conversion, name)
      end
    end
  end
  return chances, verified
end

-- flows: what the rule counted (flows in the velocity window, or codes that had their
-- chance), verified: of those codes, the verified ('' for velocity), window: the rule's window
local function block(c, r, scope, reason, detail, flows, verified, window)
  local ends = c.now + c.block_seconds
  -- the scope's counts go with the block (as a lift takes them): when it ends, the scope
  -- starts afresh instead of being blocked again by the counts that blocked it
  redis.call('DEL', scope.block, scope.conversion, scope.pending)
  if scope.hits then redis.call('DEL', scope.hits) end
  redis.call('HSET', scope.block, 'id', scope.id, 'scope', scope.kind, 'value', scope.value,
    'country', r.region, 'reason', reason, 'detail', detail, 'since', c.now, 'until', ends,
    'mode', c.mode, 'refused', 0, 'flows', flows, 'verified', verified, 'window', window)
  redis.call('EXPIRE', scope.block, c.block_seconds)
  redis.call('ZADD', c.blocks, ends, scope.id)
  if redis.call('TTL', c.blocks) < c.block_seconds then
    redis.call('EXPIRE', c.blocks, c.block_seconds)
  end
end

local function low_conversion(c, r, scope)
  local chances, verified = conversion(c, scope)
  if chances >= c.min_volume and verified < c.min_conversion * chances then
    block(c, r, scope, 'low_conversion',
      string.format('%d of %d codes verified in %d s', verified, chances, c.window),
      chances, verified, c.window)
    return true
  end
  return false
end

-- the reason one recipient is refused for, or nil
local function screen_one(c, r)
  if r.static ~= '' then return r.static end
  if r.exempt then return nil end
  for _, scope in ipairs({r.prefix, r.country}) do
    local made_in = redis.call('HGET', scope.block, 'mode')
    -- a block monitor mode made only says what would have happened: it binds nobody once
    -- the workspace enforces (its rules are checked afresh, and block for real if they trip)
    if made_in and (made_in ~= 'monitor' or c.mode == 'monitor') then
      redis.call('HINCRBY', scope.block, 'refused', 1)
      return 'blocked'
    end
  end
  if low_conversion(c, r, r.prefix) or low_conversion(c, r, r.country) then
    return 'low_conversion'
  end
  if r.country_limit > 0 then
    local hour = math.floor(c.now / 3600)
    local this = tonumber(redis.call('HGET', r.country.rate, hour) or '0')
    local last = tonumber(redis.call('HGET', r.country.rate, hour - 1) or '0')
    -- a sliding hour: the last hour's count weighted by how much of it is still inside
    if this + last * (1 - (c.now % 3600) / 3600) >= r.country_limit then
      return 'country_limit'
    end
  end
  redis.call('ZREMRANGEBYSCORE', r.prefix.hits, '-inf', c.now - c.prefix_window)
  local hits = redis.call('ZCARD', r.prefix.hits)
  if hits >= c.prefix_limit then
    block(c, r, r.prefix, 'prefix_velocity',
      string.format('%d flows in %d s, the limit is %d', hits + 1, c.prefix_window,
        c.prefix_limit), hits + 1, '', c.prefix_window)
    return 'prefix_velocity'
  end
  return nil
end

-- nil when every recipient passes; else {verdict, reason, country}, the verdict
-- 'fraud_refused' or, in monitor mode, 'fraud_monitored' (submit.lua acts on it)
local function screen(KEYS, ARGV)
  local c = fraud_config(KEYS, ARGV)
  for _, r in ipairs(c.recipients) do
    local reason = screen_one(c, r)
    if reason then
      local field = 'fraud_blocked|reason=' .. reason .. '|country=' .. r.region .. '|mode=' .. c.mode
      metrics_count(c.metrics, field)
      local verdict = c.mode == 'monitor' and 'fraud_monitored' or 'fraud_refused'
      return {verdict, reason, r.region}
    end
  end
  return nil
end

-- an accepted flow counts to its prefixes' velocity and countries' hours, and its code waits
-- for its chance to end; returns the scopes the flow's verification will count for (JSON)
local function count_screened(KEYS, ARGV)
  local c = fraud_config(KEYS, ARGV)
  local scopes = {}
  for _, r in ipairs(c.recipients) do
    if not r.exempt then
      redis.call('ZADD', r.prefix.hits, c.now, c.flow_id)
      redis.call('EXPIRE', r.prefix.hits, math.ceil(c.prefix_window))
      local hour = math.floor(c.now / 3600)
      redis.call('HINCRBY', r.country.rate, hour, 1)
      redis.call('HDEL', r.country.rate, hour - 2)
      redis.call('EXPIRE', r.country.rate, 7200)
    end
    -- a safe-listed or trusted person's unused code says nothing of its range
    if r.chance > 0 and not r.exempt then
      for _, scope in ipairs({r.prefix, r.country}) do
        redis.call('ZADD', scope.pending, c.now + r.chance, c.flow_id)
        redis.call('EXPIRE', scope.pending, r.chance + c.window)
        scopes[#scopes + 1] = scope.id
      end
    end
  end
  return cjson.encode(scopes)
end
