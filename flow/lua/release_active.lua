-- A recipient's "flow running" marker, removed if it is still this flow's.
-- KEYS[1]: the marker. ARGV[1]: the flow id.
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
