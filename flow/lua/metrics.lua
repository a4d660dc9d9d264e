-- The shared counters and histograms (flow/metrics.py says how a field is named). Its
-- constants come first (flow.metrics.lua_prelude: METRICS_TTL, LATENCY_BUCKETS).
-- No KEYS or ARGV of its own: each function takes the metrics hash (flow/keys.py, metrics)
-- as `key`, from the KEYS of the script that includes it (the prelude's count binds KEYS[5]).

-- One count of a labelled series, `<metric>|<label>=<value>|...`.
local function metrics_count(key, name)
  redis.call('HINCRBY', key, name, 1)
  redis.call('EXPIRE', key, METRICS_TTL)
end

-- A delivery report's latency: a count in the one bucket it falls in, and the sum.
local function metrics_observe_latency(key, labels, seconds)
  for _, bucket in ipairs(LATENCY_BUCKETS) do
    if seconds <= bucket[1] then
      metrics_count(key, 'dlr_latency_seconds|' .. labels .. '|le=' .. bucket[2])
      break
    end
  end
  redis.call('HINCRBYFLOAT', key, 'dlr_latency_seconds_sum|' .. labels, seconds)
end
