"""/metrics on the real API: counts written by the workers' processes reach the scrape."""

from __future__ import annotations

import pytest

from harness import Samples, System, metric_samples, moved, recipient, sms_step, whatsapp_step

pytestmark = pytest.mark.integration


def scrape(system: System) -> Samples:
    reply = system.http.get(f"{system.stack.api_url}/metrics")
    assert reply.status_code == 200
    assert reply.headers["content-type"].startswith("text/plain; version=0.0.4")
    return metric_samples(reply.text)


def test_a_switched_flow_moves_every_metric(observed_system: System) -> None:
    system = observed_system
    to = recipient()
    system.rules(
        {"channel": "sms", "recipient": to, "action": "fail", "delay_ms": 200},
        {"channel": "whatsapp", "recipient": to, "action": "deliver", "delay_ms": 200},
    )
    before = scrape(system)
    request_id = system.start(
        {
            "messages": [sms_step(to), whatsapp_step(to)],
            "webhookurl": system.webhooks.at(f"/metrics/{to}"),
        }
    )
    assert system.wait_terminal(request_id).status == "delivered"
    system.wait(lambda: system.webhooks.for_path(f"/metrics/{to}"), what="the switch webhook")
    # the webhook's outcome is counted just after the receiver answered
    system.wait(
        lambda: (
            moved(
                before,
                scrape(system),
                "otpflow_webhook_deliveries_total",
                event="channel_switch",
                result="delivered",
            )
            == 1
        ),
        what="the webhook delivery to be counted",
    )
    after = scrape(system)

    assert moved(before, after, "otpflow_flows_started_total") == 1
    assert moved(before, after, "otpflow_flows_ended_total", outcome="delivered") == 1
    assert moved(before, after, "otpflow_flows_ended_total", outcome="failed") == 0
    switch = {"from_channel": "sms", "to_channel": "whatsapp", "reason": "dlr_failed"}
    assert moved(before, after, "otpflow_channel_switches_total", **switch) == 1
    for channel in ("sms", "whatsapp"):
        sends = {"provider": "zixflow", "channel": channel, "result": "accepted"}
        assert moved(before, after, "otpflow_provider_sends_total", **sends) == 1
    sms_failed = {"channel": "sms", "provider": "zixflow", "outcome": "failed"}
    wa_delivered = {"channel": "whatsapp", "provider": "zixflow", "outcome": "delivered"}
    view = system.flow(request_id)
    for step, labels in zip(view.steps, (sms_failed, wa_delivered), strict=True):
        assert moved(before, after, "otpflow_dlr_latency_seconds_count", **labels) == 1
        # the observation is the step's own send -> report time, as its timeline records it
        latency = moved(before, after, "otpflow_dlr_latency_seconds_sum", **labels)
        assert step.dlr_at is not None and step.accepted_at is not None
        assert latency == pytest.approx(step.dlr_at - step.accepted_at, abs=1e-3)
        inf = labels | {"le": "+Inf"}
        assert moved(before, after, "otpflow_dlr_latency_seconds_bucket", **inf) == 1
