"""Static routing on the real system: whatever the statistics say, every message tries the
configured order, as before adaptive routing (OTPFLOW_ROUTING__MODE=static)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from otpflow.flow import keys

from harness import REDIS_HOST, System, mobile_numbers, sms_step, start_system, stop_system

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def static(tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    running = start_system(
        Path(tmp_path_factory.mktemp("routing-static")),
        state_url=f"{REDIS_HOST}/7",
        broker_url=f"{REDIS_HOST}/8",
        workers=1,
        env={
            "OTPFLOW_ROUTES__SMS": "zixflow,messageflow",
            "OTPFLOW_ROUTING__MODE": "static",
            "OTPFLOW_ROUTING__EXPLORATION_SHARE": "0.5",  # static mode explores nothing
            "OTPFLOW_ROUTING__REFRESH_SECONDS": "0.2",
            "OTPFLOW_FRAUD__MODE": "off",  # numbers in a row, which it would block
        },
    )
    yield running
    stop_system(running)


def test_a_degraded_provider_keeps_every_first_attempt_in_static_mode(static: System) -> None:
    system = static
    system.rules(
        {"provider": "zixflow", "channel": "sms", "prefix": "91", "action": "never"},
        {"channel": "sms", "action": "deliver", "delay_ms": 100},
    )
    numbers = mobile_numbers("IN", 60, first=200_000)
    flow_ids = [system.start({"messages": [sms_step(to, timeout=1)]}) for to in numbers]
    views = [system.wait_terminal(flow_id) for flow_id in flow_ids]
    assert {view.status for view in views} == {"failed"}  # every one lost at zixflow
    assert {view.steps[0].provider for view in views} == {"zixflow"}
    sent = [e for view in views for e in view.events if e["type"] == "sent"]
    assert {(e["route"]["mode"], e["route"]["rank"]) for e in sent} == {("static", 1)}
    # every SMS went to zixflow's API (MessageFlow's is /v2.1/sms)
    paths = {r["path"] for r in system.sim_requests(channel="sms") if r["recipient"] in numbers}
    assert paths == {"/api/ingest/sms/v1/message/send"}
    # statistics are still kept (to read, and for a switch to adaptive), and no choice made
    stats_keys = list(system.state.scan_iter(match=keys.routing_stats(0)[:-1] + "*"))
    assert stats_keys and system.state.hlen(keys.routing_leaders()) == 0
