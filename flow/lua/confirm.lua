-- The producer saw step 0's send reach the broker (FlowStore.mark_enqueued).
-- A transition: runs after the prelude (prelude.lua), with its KEYS and ARGV[1-3].
-- ARGV[4]: an idempotency record's value, ARGV[5]: its seconds; KEYS[10]: its key
-- (absent: none to write).
-- The producer saw step 0's send reach the broker: the flow is accepted. One that the timer
-- loop discarded meanwhile (its confirmation came too late) answered 'missing' above.
redis.call('HSET', FLOW_KEY, 'enqueued', '1')
sset(0, 'queued_at', NOW)  -- step 0's send is in the queue now: see keys.claimed_through
count('flows_started')
if KEYS[10] then redis.call('SET', KEYS[10], ARGV[4], 'EX', tonumber(ARGV[5])) end
local early = get('early')
if early == 'waiting' then
  -- the send that came first waits for this: wake it, and it sends
  redis.call('RPUSH', CONFIRMED_KEY, '1')
  redis.call('EXPIRE', CONFIRMED_KEY, 60)
end
-- a send that came first and left ('gone'): the producer publishes it again
return {'confirmed', early == 'gone' and '1' or '0'}
