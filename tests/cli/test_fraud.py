"""``otpflow fraud blocks`` and ``otpflow fraud lift`` against a real Redis."""

from __future__ import annotations

import json

import pytest
import redis

from otpflow.cli import main as cli
from otpflow.config.settings import Settings
from otpflow.producers import FraudRefused, OtpflowClient

from harness import mobile_numbers, sms_step


def test_an_operator_lists_and_lifts_a_block(
    redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    kwargs = redis_client.connection_pool.connection_kwargs
    monkeypatch.setenv(
        "OTPFLOW_REDIS_URL", f"redis://{kwargs['host']}:{kwargs['port']}/{kwargs['db']}"
    )
    client = OtpflowClient(
        Settings(broker_url="memory://", fraud={"prefix_limit": 1}), redis_client=redis_client
    )
    first, second = mobile_numbers("GB", 2)
    client.send({"messages": [sms_step(first)]}, workspace="acme")
    with pytest.raises(FraudRefused):
        client.send({"messages": [sms_step(second)]}, workspace="acme")

    assert cli.main(["fraud", "blocks", "--workspace", "acme", "--json"]) == 0
    (block,) = json.loads(capsys.readouterr().out)["blocks"]
    assert block["reason"] == "prefix_velocity" and block["value"] == "+" + first[:-3]
    assert cli.main(["fraud", "blocks", "--workspace", "acme"]) == 0
    table = capsys.readouterr().out
    assert block["id"] in table and "prefix_velocity" in table

    assert cli.main(["fraud", "lift", "--workspace", "acme", block["id"]]) == 0
    assert f"lifted {block['id']}" in capsys.readouterr().out
    assert cli.main(["fraud", "blocks", "--workspace", "acme"]) == 0
    assert "no blocks in force" in capsys.readouterr().out
    assert cli.main(["fraud", "lift", "--workspace", "acme", block["id"]]) == 2
    assert cli.main(["fraud", "lift", "--workspace", "acme", "GB"]) == 2
