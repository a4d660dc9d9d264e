"""Timers on the live system: thousands of flows waiting on their timeouts hold nothing in a
worker's memory and do not delay new flows, and every timer fires once across the workers."""

from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest

from otpflow.config.settings import Settings
from otpflow.flow import keys
from otpflow.flow.contract import make_celery

from harness import System, duplicate_sends, recipient, sms_step, wait_all_ended, whatsapp_step

pytestmark = pytest.mark.integration

PARKED = 2000


def submit(system: System, bodies: list[dict]) -> list[str]:
    client = system.client()
    with ThreadPoolExecutor(8) as pool:
        return list(pool.map(lambda body: client.send(body, workspace="timers"), bodies))


def count_sent(system: System, flow_ids: list[str]) -> int:
    pipe = system.state.pipeline(transaction=False)
    for flow_id in flow_ids:
        pipe.hget(keys.flow(flow_id), "s0:status")
    return sum(status == b"sent" for status in pipe.execute())


def test_parked_flows_are_held_in_redis_only_and_new_flows_still_go_out(
    system: System,
) -> None:
    parked_to = [recipient() for _ in range(PARKED)]
    system.rules(*[{"channel": "sms", "recipient": to, "action": "never"} for to in parked_to])
    parked = submit(system, [{"messages": [sms_step(to, timeout=300)]} for to in parked_to])
    system.wait(
        lambda: count_sent(system, parked) == PARKED, timeout=120, what="every parked SMS sent"
    )

    # No worker holds a waiting timeout: no ETA/countdown task anywhere, every timer in Redis.
    app = make_celery(Settings(broker_url=system.stack.broker_url))
    try:
        scheduled = app.control.inspect(timeout=2).scheduled() or {}
    finally:
        app.close()
    assert len(scheduled) == 2, f"both workers must answer: {scheduled}"
    assert all(tasks == [] for tasks in scheduled.values()), scheduled
    timers = system.state.zrange(keys.timers(), 0, -1)
    assert {f"{flow_id}:0".encode() for flow_id in parked} <= set(timers)

    # New flows are sent and delivered while the parked ones keep waiting.
    probe_to = [recipient() for _ in range(20)]
    system.rules(*[{"channel": "sms", "recipient": to, "action": "deliver"} for to in probe_to])
    probes = submit(system, [{"messages": [sms_step(to, timeout=30)]} for to in probe_to])
    assert [system.wait_terminal(flow_id).status for flow_id in probes] == ["delivered"] * 20
    assert count_sent(system, parked) == PARKED


def test_each_timeout_fires_once_across_the_workers(system: System) -> None:
    people = [recipient() for _ in range(200)]
    system.rules(
        *[{"channel": "sms", "recipient": to, "action": "never"} for to in people],
        *[{"channel": "whatsapp", "recipient": to, "action": "deliver"} for to in people],
    )
    flows = submit(system, [{"messages": [sms_step(to, 1), whatsapp_step(to)]} for to in people])
    wait_all_ended(system, flows, timeout=60)

    switches: Counter[int] = Counter()
    for flow_id in flows:
        view = system.flow(flow_id)
        assert view.status == "delivered" and view.steps[0].status == "timeout", flow_id
        switches[[e["type"] for e in view.events].count("channel_switch")] += 1
    assert switches == {1: 200}
    sends = Counter(r["channel"] for r in system.sim_requests() if r["recipient"] in set(people))
    assert sends == {"sms": 200, "whatsapp": 200}
    assert not {key for key in duplicate_sends(system) if key[0] in set(people)}
