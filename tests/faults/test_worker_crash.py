"""Workers killed or stopped mid-flight: every accepted flow still ends, no step is sent twice."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest

from harness import (
    MIXED_LONGEST_FLOW_SECONDS,
    RECOVERY_SECONDS,
    HttpRecorder,
    System,
    duplicate_sends,
    plan_mixed,
    recipient,
    sms_step,
    statuses,
    wait_all_ended,
    whatsapp_step,
)

pytestmark = pytest.mark.faults


def submit_all(system: System, plans: list) -> None:
    client = system.client()
    with ThreadPoolExecutor(8) as pool:
        ids = list(pool.map(lambda plan: client.send(plan.body, workspace="faults"), plans))
    for plan, request_id in zip(plans, ids, strict=True):
        plan.request_id = request_id


def assert_all_ended_as_planned(system: System, plans: list) -> None:
    """Every flow ends as its outcome dictates, except where the kill took a send with it:
    that step is never sent again (at most once), so its flow may fail instead."""
    ended = statuses(system, [p.request_id for p in plans])
    wrong: list[tuple] = []
    first_events: list[dict] = []
    for plan, status in zip(plans, ended, strict=True):
        if status == plan.expected:
            continue
        view = system.flow(plan.request_id)
        if status == "failed" and any(s.reason == "send_lease_expired" for s in view.steps):
            continue  # a send died with the killed worker
        wrong.append((plan.kind, status, [(s.channel, s.status, s.reason) for s in view.steps]))
        first_events = first_events or view.events
    assert not wrong, f"{len(wrong)} flows ended unexpectedly, e.g. {wrong[:5]}; {first_events}"
    assert duplicate_sends(system) == {}


@pytest.mark.parametrize("broker", ["redis", "rabbitmq"])
def test_sigkill_one_of_two_workers_mid_flight(
    fault_system: Callable[..., System], broker: str
) -> None:
    system = fault_system(broker=broker)
    plans = plan_mixed(system, 300)
    submit_all(system, plans)
    time.sleep(1.0)  # some flows sending, some waiting on their countdown
    in_flight = sum(
        s not in ("delivered", "failed") for s in statuses(system, [p.request_id for p in plans])
    )

    system.stack.stop_process("worker1", signal.SIGKILL)
    system.stack.start_worker("worker3", concurrency=8)

    bound = MIXED_LONGEST_FLOW_SECONDS + RECOVERY_SECONDS + 15
    took = wait_all_ended(system, [p.request_id for p in plans], timeout=bound)
    print(f"{broker}: {in_flight} flows in flight at the kill; all ended {took:.1f} s after it")
    assert in_flight >= 100, "the kill must hit flows in flight"
    assert_all_ended_as_planned(system, plans)


def test_sigterm_is_a_warm_shutdown_that_loses_nothing(
    fault_system: Callable[..., System],
) -> None:
    system = fault_system()
    plans = plan_mixed(system, 200)
    submit_all(system, plans)
    time.sleep(1.0)
    code = system.stack.stop_process("worker1", signal.SIGTERM, timeout=60)
    assert code == 0, "a SIGTERM must end the worker cleanly"
    system.stack.start_worker("worker3", concurrency=8)

    wait_all_ended(
        system,
        [p.request_id for p in plans],
        timeout=MIXED_LONGEST_FLOW_SECONDS + RECOVERY_SECONDS + 15,
    )
    assert_all_ended_as_planned(system, plans)


@pytest.mark.parametrize("broker", ["redis", "rabbitmq"])
def test_a_webhook_lost_with_a_killed_worker_is_delivered(
    fault_system: Callable[..., System], broker: str
) -> None:
    """The worker calling a caller's webhook is SIGKILLed mid-call: the call stays in the timers
    index until it ran, so a worker sends it again (at least once, same event id)."""
    system = fault_system(broker=broker, workers=1)
    held = threading.Event()

    def slow_once(record: dict[str, object]) -> int:
        if not held.is_set():
            held.set()
            time.sleep(3)  # the worker is killed while it waits for this reply
        return 200

    receiver = HttpRecorder(slow_once)
    try:
        to = recipient()
        system.rules(
            {"channel": "sms", "recipient": to, "action": "fail", "delay_ms": 100},
            {"channel": "whatsapp", "recipient": to, "action": "never"},
        )
        url = receiver.at("/switch")
        request_id = system.start(
            {"messages": [sms_step(to, timeout=30), whatsapp_step(to)], "webhookurl": url}
        )
        assert held.wait(20), "the switch webhook never arrived"
        system.stack.stop_process("worker1", signal.SIGKILL)
        system.stack.start_worker("worker2", concurrency=8)

        # published again once its lease (3 webhook timeouts + the grace) has run out
        system.wait(lambda: len(receiver.received) >= 2, timeout=40, what="the webhook sent again")
        system.wait(
            lambda: any(
                e["type"] == "webhook" and e.get("result") == "delivered"
                for e in system.flow(request_id).events
            ),
            what="the delivery on the timeline",
        )
        first, again = receiver.received[:2]
        assert first["headers"]["X-OTPflow-Event-Id"] == again["headers"]["X-OTPflow-Event-Id"]
    finally:
        receiver.close()
