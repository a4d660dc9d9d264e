"""Providers and webhook receivers that fail: retried with backoff inside the budget, then the
flow moves on; a receiver that stays down is given up on, and that is on the timeline."""

from __future__ import annotations

import time
from collections.abc import Callable
from itertools import pairwise

import pytest

from otpflow.cli.stack import free_port

from harness import System, recipient, sms_step, whatsapp_step

pytestmark = pytest.mark.faults


def test_provider_500_for_ten_seconds_is_retried_then_the_flow_moves_on(
    fault_system: Callable[..., System],
) -> None:
    system = fault_system()
    to = recipient()
    system.rules(
        {"channel": "sms", "recipient": to, "action": "error"},
        {"channel": "whatsapp", "recipient": to, "action": "deliver", "delay_ms": 100},
    )
    outage_start = time.monotonic()
    request_id = system.start({"messages": [sms_step(to, timeout=30), whatsapp_step(to)]})
    view = system.wait_terminal(request_id, timeout=15)
    assert time.monotonic() - outage_start < 10, "the flow moved on while the outage lasted"

    attempts = system.sim_requests(recipient=to, channel="sms")
    assert len(attempts) >= 3, "transient errors are retried"
    assert {a["status_code"] for a in attempts} == {500}
    gaps = [b["received_at"] - a["received_at"] for a, b in pairwise(attempts)]
    # full-jitter backoff: attempt n waits between 0.25 * 2**(n-1) and 0.5 * 2**(n-1) s
    assert gaps[-1] > gaps[0] - 0.05, f"retries back off: {gaps}"
    assert view.status == "delivered" and view.delivered_step == 1
    assert view.steps[0].status == "error" and "500" in (view.steps[0].reason or "")
    failed = [e for e in view.events if e["type"] == "attempt_failed"]
    assert len(failed) == len(attempts)
    switch = next(e for e in view.events if e["type"] == "channel_switch")
    assert switch["reason"] == "send_error"


def test_provider_timing_out_is_not_sent_twice(fault_system: Callable[..., System]) -> None:
    system = fault_system()
    to = recipient()
    # answers only after 10 s, far past the 2 s request timeout: the SMS may have gone out
    system.rules(
        {"channel": "sms", "recipient": to, "action": "slow", "accept_delay_ms": 10_000},
        {"channel": "whatsapp", "recipient": to, "action": "deliver", "delay_ms": 100},
    )
    request_id = system.start({"messages": [sms_step(to, timeout=30), whatsapp_step(to)]})
    view = system.wait_terminal(request_id, timeout=15)
    assert view.status == "delivered" and view.delivered_step == 1
    assert view.steps[0].status == "error"
    assert "ReadTimeout" in (view.steps[0].reason or "")
    # the simulator logs the request when its slow answer is done
    system.wait(
        lambda: system.sim_requests(recipient=to, channel="sms"),
        timeout=15,
        what="the slow SMS request to be logged",
    )
    time.sleep(1)
    assert len(system.sim_requests(recipient=to, channel="sms")) == 1


def test_webhook_receiver_down_is_retried_then_given_up(
    fault_system: Callable[..., System],
) -> None:
    system = fault_system()
    to = recipient()
    system.rules(
        {"channel": "sms", "recipient": to, "action": "fail", "delay_ms": 100},
        {"channel": "whatsapp", "recipient": to, "action": "deliver", "delay_ms": 100},
    )
    dead = f"http://127.0.0.1:{free_port()}/switch"  # nothing listens here
    request_id = system.start({"messages": [sms_step(to), whatsapp_step(to)], "webhookurl": dead})

    def webhook_events() -> list[dict]:
        return [e for e in system.flow(request_id).events if e["type"] == "webhook"]

    system.wait(
        lambda: any(e["result"] == "gave_up" for e in webhook_events()),
        timeout=30,
        what="the webhook to be given up",
    )
    events = webhook_events()
    assert [e["result"] for e in events] == ["retrying", "retrying", "gave_up"]
    assert [e["attempt"] for e in events] == [1, 2, 3]
    gaps = [b["ts"] - a["ts"] for a, b in pairwise(events)]
    assert gaps[1] > gaps[0] * 0.9, "backoff grows"
    assert system.flow(request_id).status == "delivered", "a dead webhook never blocks the flow"
