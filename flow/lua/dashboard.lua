-- The support dashboard's delivery counts (otpflow.flow.dashboard_store reads them), kept by
-- the transitions that already run. No KEYS or ARGV of its own: it writes a workspace's
-- bucket, named by the workspace and Redis's clock with dashboard_stats_key (rendered from
-- flow/keys.py). Its constants come first (flow.dashboard_store.lua_prelude).

-- One count into the workspace's current ten-minute bucket.
local function dash_count(now, workspace, what)
  local key = dashboard_stats_key(workspace, math.floor(now / DASHBOARD_BUCKET_SECONDS))
  -- a count above 1 means the bucket was written before, so its TTL is already set
  if redis.call('HINCRBY', key, what, 1) == 1 then
    redis.call('EXPIRE', key, DASHBOARD_STATS_TTL)
  end
end

-- Seconds from a flow's creation to its delivery, as a count in its latency bucket, by the
-- delivering step's channel, provider and country ('ttd|<channel>|<provider>|<country>|<n>').
local function dash_time_to_deliver(now, workspace, route, seconds)
  for n, edge in ipairs(ROUTING_LATENCY_EDGES) do
    if seconds <= edge then
      dash_count(now, workspace, 'ttd|' .. route .. '|' .. n)
      return
    end
  end
end
