"""``otpflow routing`` against a real Redis: the live table, as text and as JSON."""

from __future__ import annotations

import json

import pytest
import redis

from otpflow.cli import main as cli
from otpflow.config.settings import Settings
from otpflow.flow.models import FlowRequest
from otpflow.flow.store import FlowStore

from fakes import TEST_KEYRING
from harness import sms_step


def test_the_table_shows_each_provider_per_country(
    redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    kwargs = redis_client.connection_pool.connection_kwargs
    monkeypatch.setenv(
        "OTPFLOW_REDIS_URL", f"redis://{kwargs['host']}:{kwargs['port']}/{kwargs['db']}"
    )
    monkeypatch.setenv("OTPFLOW_ROUTES__SMS", "zixflow,messageflow")
    assert cli.main(["routing"]) == 0
    assert "nothing measured" in capsys.readouterr().out

    store = FlowStore(redis_client, TEST_KEYRING, 600, routing=Settings().routing)
    flow_id = store.create("ws", FlowRequest.parse({"messages": [sms_step("919876543210")]}))
    store.mark_enqueued(flow_id)
    store.claim(flow_id, 0, 1, 30)
    store.accepted(flow_id, 0, "zixflow", "m1", 30)

    assert cli.main(["routing", "--json"]) == 0
    table = json.loads(capsys.readouterr().out)
    assert table["mode"] == "adaptive"
    rows = {(r["provider"], r["country"]): r for r in table["rows"]}
    assert rows[("zixflow", "IN")]["counts"] == {"sent": 1}
    assert rows[("messageflow", "IN")]["counts"] == {}  # configured, not yet measured
    assert cli.main(["routing"]) == 0
    text = capsys.readouterr().out
    assert "zixflow" in text and "messageflow" in text and "IN" in text
