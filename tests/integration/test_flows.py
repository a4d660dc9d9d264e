"""SMS -> WhatsApp flows on the real system (issue 2)."""

from __future__ import annotations

import threading
import time

import pytest
from standardwebhooks import Webhook

from otpflow.flow.signing import verify_webhook_signature, webhook_secret

from harness import WORKSPACE, System, recipient, sms_step, whatsapp_step

pytestmark = pytest.mark.integration


@pytest.fixture
def system(any_system: System) -> System:
    """Every test here runs once with Redis and once with RabbitMQ as the broker."""
    return any_system


def requests_for(system: System, to: str, channel: str) -> list[dict]:
    return system.sim_requests(recipient=to, channel=channel)


def quiet_period(seconds: float = 1.5) -> None:
    """Give a wrongly scheduled send the time it would need to show up."""
    time.sleep(seconds)


def test_sms_delivered_ends_the_flow_and_whatsapp_is_never_called(system: System) -> None:
    to = recipient()
    system.rules({"channel": "sms", "recipient": to, "action": "deliver", "delay_ms": 100})
    request_id = system.start({"messages": [sms_step(to, timeout=3), whatsapp_step(to)]})

    view = system.wait_terminal(request_id)
    assert view.status == "delivered" and view.delivered_step == 0
    assert [s.status for s in view.steps] == ["delivered", "skipped"]
    quiet_period(3.5)  # past the SMS timeout: its check must find the flow ended
    assert len(requests_for(system, to, "sms")) == 1
    assert requests_for(system, to, "whatsapp") == []
    assert system.flow(request_id).status == "delivered"


def test_sms_never_delivered_switches_after_its_timeout(system: System) -> None:
    to, hook = recipient(), f"/switch/{recipient()}"
    system.rules(
        {"channel": "sms", "recipient": to, "action": "never"},
        {"channel": "whatsapp", "recipient": to, "action": "deliver", "delay_ms": 100},
    )
    request_id = system.start(
        {
            "messages": [sms_step(to, timeout=2), whatsapp_step(to)],
            "webhookurl": system.webhooks.at(hook),
            "callbackData": "signup-42",
        }
    )

    view = system.wait_terminal(request_id)
    assert view.status == "delivered" and view.delivered_step == 1
    sms = view.steps[0]
    assert sms.status == "timeout"
    switch = next(e for e in view.events if e["type"] == "channel_switch")
    assert switch["reason"] == "timeout"
    assert sms.accepted_at is not None
    lag = switch["ts"] - (sms.accepted_at + 2)
    assert lag >= 0, "switched before the timeout"
    print(f"switch lag after the 2 s timeout: {lag * 1000:.0f} ms")
    assert len(requests_for(system, to, "whatsapp")) == 1

    hooks = system.wait(lambda: system.webhooks.for_path(hook), what="switch webhook")
    quiet_period(1)
    hooks = system.webhooks.for_path(hook)
    assert len(hooks) == 1
    (received,) = hooks
    # signed with the workspace's own webhook secret (issue 12), per Standard Webhooks and in
    # the older header
    whsecret = webhook_secret(system.stack.secret, WORKSPACE)
    assert Webhook(whsecret).verify(received["raw"], received["headers"]) == received["body"]
    legacy = received["headers"]["X-OTPflow-Signature"]
    assert verify_webhook_signature(whsecret, legacy, received["raw"])
    other_workspace = webhook_secret(system.stack.secret, "other-ws")
    assert not verify_webhook_signature(other_workspace, legacy, received["raw"])
    body = received["body"]
    assert body["event"] == "channel_switch"
    assert body["request_id"] == request_id
    assert body["callbackData"] == "signup-42"
    assert body["from"] == {
        "index": 0,
        "channel": "sms",
        "provider": "zixflow",
        "status": "timeout",
        "reason": "timeout",
    }
    assert body["to"] == {"index": 1, "channel": "whatsapp"}


def test_failed_dlr_switches_at_once_not_at_the_timeout(system: System) -> None:
    to = recipient()
    system.rules(
        {"channel": "sms", "recipient": to, "action": "fail", "delay_ms": 300},
        {"channel": "whatsapp", "recipient": to, "action": "deliver", "delay_ms": 100},
    )
    request_id = system.start({"messages": [sms_step(to, timeout=30), whatsapp_step(to)]})

    (whatsapp,) = system.wait(
        lambda: requests_for(system, to, "whatsapp"), timeout=10, what="the WhatsApp send"
    )
    (sms,) = requests_for(system, to, "sms")
    failure = next(p for p in system.sim_postbacks() if p["request_id"] == sms["request_id"])
    assert failure["body"]["status"] == "failed"
    after_failure = whatsapp["received_at"] - failure["sent_at"]
    print(
        f"WhatsApp sent {after_failure * 1000:.0f} ms after the failed DLR "
        f"({whatsapp['received_at'] - sms['received_at']:.2f} s after the SMS)"
    )
    assert after_failure < 1.0
    view = system.wait_terminal(request_id)
    assert view.status == "delivered"
    assert view.steps[0].status == "failed" and view.steps[0].dlr == "failed"
    switch = next(e for e in view.events if e["type"] == "channel_switch")
    assert switch["reason"] == "dlr_failed"


def test_every_channel_failing_fails_the_flow_with_one_request_per_channel(system: System) -> None:
    to = recipient()
    system.rules(
        {
            "channel": "*",
            "recipient": to,
            "action": "fail",
            "delay_ms": 100,
            "status": "undelivered",
        }
    )
    request_id = system.start({"messages": [sms_step(to, timeout=5), whatsapp_step(to, timeout=5)]})

    view = system.wait_terminal(request_id)
    assert view.status == "failed"
    assert [s.status for s in view.steps] == ["failed", "failed"]
    quiet_period(5.5)  # past both timeouts: the countdown checks must send nothing more
    assert len(requests_for(system, to, "sms")) == 1
    assert len(requests_for(system, to, "whatsapp")) == 1
    assert [e["type"] for e in system.flow(request_id).events].count("channel_switch") == 1


def test_duplicate_dlrs_and_concurrent_checks_switch_once(system: System) -> None:
    to, hook = recipient(), f"/switch/{recipient()}"
    system.rules(
        {"channel": "sms", "recipient": to, "action": "never"},
        {"channel": "whatsapp", "recipient": to, "action": "never"},
    )
    request_id = system.start(
        {
            "messages": [sms_step(to, timeout=30), whatsapp_step(to)],
            "webhookurl": system.webhooks.at(hook),
        }
    )
    (sms,) = system.wait(lambda: requests_for(system, to, "sms"), what="the SMS send")
    system.wait(lambda: system.flow(request_id).steps[0].status == "sent", what="SMS sent")

    # the same failed DLR five times at once, and two timer checks of the step at once
    threads = [
        threading.Thread(target=system.sim_dlr, args=(sms["request_id"], "failed"))
        for _ in range(5)
    ]
    threads += [threading.Thread(target=system.store.check, args=(request_id, 0)) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    system.wait(lambda: requests_for(system, to, "whatsapp"), what="the WhatsApp send")
    system.wait(lambda: system.webhooks.for_path(hook), what="the switch webhook")
    quiet_period(2)
    assert len(requests_for(system, to, "whatsapp")) == 1
    assert len(system.webhooks.for_path(hook)) == 1
    view = system.flow(request_id)
    assert [e["type"] for e in view.events].count("channel_switch") == 1
    dlrs = [p for p in system.sim_postbacks() if p["request_id"] == sms["request_id"]]
    assert len(dlrs) == 5 and all(p["response_status"] == 200 for p in dlrs)
    assert view.status == "in_progress" and view.current == 1


def test_late_delivered_dlr_is_recorded_and_the_flow_stays_ended(system: System) -> None:
    to = recipient()
    system.rules(
        {"channel": "sms", "recipient": to, "action": "never"},
        {"channel": "whatsapp", "recipient": to, "action": "deliver", "delay_ms": 100},
    )
    request_id = system.start(
        {"messages": [sms_step(to, timeout=1), whatsapp_step(to), sms_step(to, timeout=5)]}
    )
    view = system.wait_terminal(request_id)
    assert view.status == "delivered" and view.delivered_step == 1

    (sms, *_) = requests_for(system, to, "sms")
    assert system.sim_dlr(sms["request_id"], "delivered").status_code == 200
    system.wait(lambda: system.flow(request_id).steps[0].dlr == "delivered", what="late DLR")
    quiet_period()
    view = system.flow(request_id)
    assert view.status == "delivered" and view.delivered_step == 1
    assert [s.status for s in view.steps] == ["timeout", "delivered", "skipped"]
    late = [e for e in view.events if e["type"] == "dlr" and e.get("late")]
    assert len(late) == 1 and late[0]["step"] == 0 and late[0]["status"] == "delivered"
    assert len(requests_for(system, to, "sms")) == 1
    assert len(requests_for(system, to, "whatsapp")) == 1


def test_reports_are_relayed_to_the_callers_own_post_back_url(system: System) -> None:
    to, path = recipient(), f"/caller-dlr/{recipient()}"
    system.rules(
        {"channel": "sms", "recipient": to, "action": "fail", "delay_ms": 100},
        {"channel": "whatsapp", "recipient": to, "action": "deliver", "delay_ms": 100},
    )
    sms = sms_step(to)
    sms["data"] |= {"post_back_url": system.webhooks.at(path), "post_back_data": "order-7"}
    request_id = system.start({"messages": [sms, whatsapp_step(to)]})
    system.wait_terminal(request_id)

    (relayed,) = system.wait(lambda: system.webhooks.for_path(path), what="the relayed report")
    (sent,) = system.sim_requests(recipient=to, channel="sms")
    assert sent["body"]["post_back_url"] != system.webhooks.at(path), "the provider reports to us"
    body = relayed["body"]
    assert body["post_back_data"] == "order-7"
    assert body["request_id"] == sent["request_id"]
    assert body["status"] == "failed" and body["type"] == "delivery_status"
    assert relayed["headers"]["X-OTPflow-Event-Id"] == f"{request_id}:dlr:0:0"
    system.wait(
        lambda: any(
            e["type"] == "relay" and e["result"] == "delivered"
            for e in system.flow(request_id).events
        ),
        what="the relay event",
    )
    quiet_period(1)
    assert len(system.webhooks.for_path(path)) == 1  # the WhatsApp step asked for no relay
