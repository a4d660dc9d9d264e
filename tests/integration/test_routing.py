"""Adaptive routing on the real system: a worker, the API and the simulator, two SMS providers.
A provider that stops delivering in one country is demoted there and wins its place back once
it delivers again; one that refuses every message opens its breaker, is skipped, is probed
after the cooldown and closes; the live table, the gauges and each step's reason show it.

Short windows and a large exploration share keep each phase to seconds.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from otpflow.flow import keys
from otpflow.flow.outcomes import text

from harness import (
    HEADERS,
    REDIS_HOST,
    System,
    metric_samples,
    mobile_numbers,
    sms_step,
    start_system,
    stop_system,
    wait_for,
)

pytestmark = pytest.mark.integration

ROUTING_ENV = {
    "OTPFLOW_ROUTES__SMS": "zixflow,messageflow",
    "OTPFLOW_ROUTING__WINDOW_SECONDS": "30",
    "OTPFLOW_ROUTING__EXPLORATION_SHARE": "0.2",
    "OTPFLOW_ROUTING__REFRESH_SECONDS": "0.2",
    "OTPFLOW_ROUTING__BREAKER_MIN_VOLUME": "5",
    "OTPFLOW_ROUTING__BREAKER_COOLDOWN_SECONDS": "2",
    "OTPFLOW_ROUTING__PROBE_SHARE": "0.5",
    "OTPFLOW_PROVIDER_ATTEMPTS": "1",
    "OTPFLOW_LIMITS__WORKSPACE_RPS": "1000",
    "OTPFLOW_FRAUD__MODE": "off",  # many flows to numbers in a row, which it would block
}
INDIA = iter(mobile_numbers("IN", 3000, first=100_000))
BRITAIN = iter(mobile_numbers("GB", 500, first=100_000))


@pytest.fixture(scope="module")
def routed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    running = start_system(
        Path(tmp_path_factory.mktemp("routing")),
        state_url=f"{REDIS_HOST}/7",
        broker_url=f"{REDIS_HOST}/8",
        workers=1,
        env=ROUTING_ENV,
    )
    yield running
    stop_system(running)


def preferred(system: System, country: str) -> str | None:
    raw = system.state.hget(keys.routing_leaders(), f"sms|{country}")
    return text(raw) if raw is not None else None


def send(system: System, numbers: Iterator[str], count: int = 5) -> list[str]:
    """A few one-step SMS flows (1 s timeout) to new numbers."""
    return [system.start({"messages": [sms_step(next(numbers), timeout=1)]}) for _ in range(count)]


def send_until(system: System, numbers: Iterator[str], done: Any, what: str) -> None:
    def step() -> bool:
        send(system, numbers)
        return bool(done())

    wait_for(step, timeout=90, what=what, interval=0.2)


def first_send(system: System, flow_id: str) -> dict[str, Any]:
    def found() -> dict[str, Any] | None:
        view = system.flow(flow_id)
        return next((e for e in view.events if e["type"] in ("sent", "attempt_failed")), None)

    event: dict[str, Any] = system.wait(found, what="the flow's first send")
    return event


def test_a_provider_that_stops_delivering_in_one_country_is_demoted_and_wins_back(
    routed: System,
) -> None:
    system = routed
    system.rules(
        {"provider": "zixflow", "channel": "sms", "prefix": "91", "action": "never"},
        {"channel": "sms", "action": "deliver", "delay_ms": 100},
    )
    send(system, BRITAIN)
    send_until(
        system,
        INDIA,
        lambda: preferred(system, "IN") == "messageflow",
        "messageflow to be preferred for IN",
    )
    assert preferred(system, "GB") == "zixflow"  # the other country is untouched
    event = first_send(system, send(system, INDIA, 1)[0])
    route = event["route"]
    assert route["mode"] == "adaptive" and route["country"] == "IN"
    if not route["explored"]:
        assert event["provider"] == "messageflow" and route["preferred"] and route["rank"] == 1

    # zixflow delivers again and messageflow stops: exploration measures zixflow, it wins back
    system.rules(
        {"provider": "messageflow", "channel": "sms", "prefix": "91", "action": "never"},
        {"channel": "sms", "action": "deliver", "delay_ms": 100},
    )
    send_until(
        system,
        INDIA,
        lambda: preferred(system, "IN") == "zixflow",
        "zixflow to be preferred for IN again",
    )

    table = system.http.get(f"{system.stack.api_url}/v1/routing/stats", headers=HEADERS)
    assert table.status_code == 200 and table.json()["mode"] == "adaptive"
    rows = {(r["provider"], r["country"]): r for r in table.json()["rows"]}
    assert rows[("zixflow", "IN")]["preferred"] and not rows[("messageflow", "IN")]["preferred"]
    assert rows[("zixflow", "IN")]["counts"]["expired"] > 0  # its bad spell, still counted
    assert system.http.get(f"{system.stack.api_url}/v1/routing/stats").status_code == 401
    samples = metric_samples(system.http.get(f"{system.stack.api_url}/metrics").text)
    changes = samples[
        ("otpflow_routing_preferred_changes_total", (("channel", "sms"), ("country", "IN")))
    ]
    assert changes >= 2
    assert (
        "otpflow_routing_score",
        (("channel", "sms"), ("country", "IN"), ("provider", "zixflow")),
    ) in samples


def breaker_state(system: System, provider: str) -> str:
    raw = system.state.hget(keys.routing_breakers(), f"{provider}|sms|state")
    return text(raw) if raw is not None else "closed"


def test_a_provider_that_refuses_everything_opens_its_breaker_and_closes_after_probes(
    routed: System,
) -> None:
    system = routed
    system.rules(
        {"provider": "zixflow", "channel": "sms", "action": "error"},
        {"channel": "sms", "action": "deliver", "delay_ms": 100},
    )
    send_until(
        system,
        BRITAIN,
        lambda: breaker_state(system, "zixflow") == "open",
        "zixflow's breaker to open",
    )
    # skipped while open: the flows go to messageflow first, zixflow is last
    flow_id = send(system, BRITAIN, 1)[0]
    event = first_send(system, flow_id)
    assert event["provider"] == "messageflow"
    assert system.wait_terminal(flow_id).status == "delivered"

    system.rules({"channel": "sms", "action": "deliver", "delay_ms": 100})
    send_until(
        system,
        BRITAIN,
        lambda: breaker_state(system, "zixflow") == "closed",
        "zixflow's breaker to close after its probes",
    )

    def routed_as_before() -> bool:
        # each process sees the close at its next read of the statistics
        event = first_send(system, send(system, BRITAIN, 1)[0])
        return bool(event["provider"] == "zixflow" and event["route"]["breaker"] == "closed")

    wait_for(routed_as_before, timeout=60, what="zixflow to take sends again", interval=0.2)
