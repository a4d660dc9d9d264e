-- Adaptive routing's statistics and circuit breakers (otpflow.flow.routing reads them), kept
-- by the transitions that already run. Its constants come first (flow.routing.lua_prelude).
-- No KEYS or ARGV of its own: it writes a statistics bucket, named by Redis's clock with
-- routing_stats_key (rendered from flow/keys.py), and the breakers' hash,
-- ROUTING_BREAKERS_KEY (keys.routing_breakers). Every function takes Redis's time as `now`.

-- One count into the window's current bucket of (provider, channel, country).
local function route_count(now, provider, channel, country, counter)
  local key = routing_stats_key(math.floor(now / ROUTING_BUCKET_SECONDS))
  local field = provider .. '|' .. channel .. '|' .. country .. '|' .. counter
  -- a count above 1 means the bucket was written before, so its TTL is already set
  if redis.call('HINCRBY', key, field, 1) == 1 then
    redis.call('EXPIRE', key, ROUTING_STATS_TTL)
  end
end

-- A delivered report's latency, as a count in its latency bucket (lat1, lat2, ...).
local function route_latency(now, provider, channel, country, seconds)
  for n, edge in ipairs(ROUTING_LATENCY_EDGES) do
    if seconds <= edge then
      route_count(now, provider, channel, country, 'lat' .. n)
      return
    end
  end
end

-- An open breaker's cooldown after its n-th opening in a row (flow.routing.breaker_cooldown,
-- rendered; the last holds for every later opening).
local function breaker_cooldown(opened)
  return BREAKER_COOLDOWNS[math.min(math.max(opened, 1), #BREAKER_COOLDOWNS)]
end

-- One send's result for the breaker of (provider, channel): ok (accepted) or not (refused,
-- unreachable, no answer in time).
--   closed    -> open       the window's failed share reaches BREAKER_ERROR_SHARE, with at
--                           least BREAKER_MIN_VOLUME sends counted
--   open      -> half_open  after its cooldown, which doubles with each reopening
--   half_open -> closed     BREAKER_PROBES accepted probes in a row (its counts start afresh)
--   half_open -> open       a failed probe
-- Results that come while it is open and cooling down (sends begun before it opened, or
-- sent because every provider was open) prove nothing and are not counted.
local function breaker_result(now, provider, channel, ok)
  local key = ROUTING_BREAKERS_KEY
  local f = provider .. '|' .. channel .. '|'
  local got = redis.call('HMGET', key, f .. 'state', f .. 'opened', f .. 'since', f .. 'ok',
                         f .. 'err', f .. 'window')
  local state = got[1] or BREAKER.CLOSED
  local opened = tonumber(got[2] or '0')
  local since = tonumber(got[3] or '0')
  if state == BREAKER.OPEN then
    if now < since + breaker_cooldown(opened) then return end
    state = BREAKER.HALF_OPEN
    redis.call('HSET', key, f .. 'state', state, f .. 'since', now, f .. 'probes', 0)
  end
  if state == BREAKER.HALF_OPEN then
    if not ok then
      redis.call('HSET', key, f .. 'state', BREAKER.OPEN, f .. 'since', now,
                 f .. 'opened', opened + 1)
    elseif redis.call('HINCRBY', key, f .. 'probes', 1) >= BREAKER_PROBES then
      redis.call('HSET', key, f .. 'state', BREAKER.CLOSED, f .. 'since', now, f .. 'ok', 0,
                 f .. 'err', 0, f .. 'window', now)
    end
    redis.call('EXPIRE', key, BREAKER_TTL)
    return
  end
  local ok_n, err_n = tonumber(got[4] or '0'), tonumber(got[5] or '0')
  local window = tonumber(got[6] or '0')
  if now - window >= BREAKER_WINDOW then
    -- a new window: the last one's counts weigh half; the hash lives a day past it
    ok_n, err_n = math.floor(ok_n / 2), math.floor(err_n / 2)
    redis.call('HSET', key, f .. 'window', now)
    redis.call('EXPIRE', key, BREAKER_TTL)
    -- closed for a good while: a next opening starts from the base cooldown again
    if opened > 0 and now - since >= 4 * BREAKER_WINDOW then
      redis.call('HSET', key, f .. 'opened', 0)
      opened = 0
    end
  end
  if ok then ok_n = ok_n + 1 else err_n = err_n + 1 end
  if not ok and ok_n + err_n >= BREAKER_MIN_VOLUME
      and err_n / (ok_n + err_n) >= BREAKER_ERROR_SHARE then
    redis.call('HSET', key, f .. 'state', BREAKER.OPEN, f .. 'since', now,
               f .. 'opened', opened + 1, f .. 'ok', 0, f .. 'err', 0)
    redis.call('EXPIRE', key, BREAKER_TTL)
  else
    redis.call('HSET', key, f .. 'state', BREAKER.CLOSED, f .. 'ok', ok_n, f .. 'err', err_n)
  end
end
