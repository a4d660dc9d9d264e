-- Take a step for sending (FlowStore.claim).
-- A transition: runs after the prelude (prelude.lua), with its KEYS and ARGV[1-3].
-- ARGV[4]: the step, ARGV[5]: the attempt, ARGV[6]: the send lease in seconds,
-- ARGV[7]: '1' if this send waited for its producer's confirmation already.
local i, attempt, lease = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local status = get('status')
if FLOW_ENDED[status] then
  step_to(i, 'skip')
  return {'flow_ended', status}
end
if tonumber(get('current')) ~= i then return {'not_current', get('current')} end
-- A flow is accepted only once its producer saw the enqueue succeed (see mark_enqueued). A
-- send that arrives first waits for the confirmation to wake it ('waiting'); if it waited in
-- vain (ARGV[7] = '1') it leaves, and the producer publishes it again as it confirms ('gone').
if get('enqueued') ~= '1' then
  redis.call('HSET', FLOW_KEY, 'early', ARGV[7] == '1' and 'gone' or 'waiting')
  return {'not_enqueued', get('created_at')}
end
if attempt == 1 then
  if not step_to(i, 'claim') then return {'already_claimed', sget(i, 'status')} end
  sset(i, 'claimed_at', NOW)
  local queued = tonumber(sget(i, 'queued_at'))
  if queued and queued > tonumber(redis.call('GET', CLAIMED_KEY) or '0') then
    redis.call('SET', CLAIMED_KEY, tostring(queued), 'EX', TTL)
  end
  set_deadline(i, NOW + lease)
  flow_to('start')
elseif sget(i, 'status') ~= 'sending' or tonumber(sget(i, 'attempts')) ~= attempt - 1 then
  return {'already_claimed', sget(i, 'status')}
end
sset(i, 'attempts', attempt)
-- How long the step has been sending, by Redis time (its send budget is measured on it), and
-- what the send needs (the request, the code, the order of its providers if an earlier
-- attempt chose it), in this same round trip.
return {'claimed', tostring(NOW - tonumber(sget(i, 'claimed_at'))), '0',
        redis.call('GET', REQUEST_KEY) or '', redis.call('GET', CODE_KEY) or '',
        get('keyring') or '', sget(i, 'route') or ''}
