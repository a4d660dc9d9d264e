"""``otpflow send`` and ``otpflow status`` as a script or a person uses them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from otpflow.worker.stack import free_port

from harness import BROKER_URL, STATE_URL, System, recipient, sms_step, whatsapp_step

pytestmark = pytest.mark.integration


def otpflow(*args: str, redis_url: str = STATE_URL) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTPFLOW_")}
    env |= {
        "OTPFLOW_REDIS_URL": redis_url,
        "OTPFLOW_BROKER_URL": BROKER_URL,
        "COLUMNS": "150",
        "OTPFLOW_SECRET": "cli-test-secret-value",
        "OTPFLOW_API_KEYS": "a:b",
    }
    if redis_url != STATE_URL:
        env["OTPFLOW_BROKER_URL"] = redis_url
    return subprocess.run(
        [sys.executable, "-m", "otpflow.worker.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_send_then_status(system: System, tmp_path: Path) -> None:
    to = recipient()
    system.rules(
        {"channel": "sms", "recipient": to, "action": "fail", "delay_ms": 100},
        {"channel": "whatsapp", "recipient": to, "action": "deliver", "delay_ms": 100},
    )
    path = tmp_path / "flow.json"
    path.write_text(json.dumps({"messages": [sms_step(to), whatsapp_step(to)]}))
    sent = otpflow("send", str(path))
    assert sent.returncode == 0, sent.stderr
    request_id = sent.stdout.strip()
    system.wait_terminal(request_id)

    as_json = otpflow("status", request_id, "--json")
    assert as_json.returncode == 0, as_json.stderr
    status = json.loads(as_json.stdout)
    assert status["status"] == "delivered"
    assert [s["status"] for s in status["steps"]] == ["failed", "delivered"]
    assert {"flow_created", "channel_switch", "flow_delivered"} <= {
        e["type"] for e in status["events"]
    }

    table = otpflow("status", request_id)
    assert table.returncode == 0
    assert "delivered" in table.stdout and "switch sms -> whatsapp" in table.stdout
    assert to not in table.stdout + as_json.stdout


def test_send_names_bad_fields_without_a_traceback(tmp_path: Path) -> None:
    path = tmp_path / "flow.json"
    path.write_text(json.dumps({"messages": [sms_step("+91", timeout=301)]}))
    result = otpflow("send", str(path))
    assert result.returncode == 2
    assert "messages.0.timeout" in result.stderr and "messages.0.data.recipient" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("command", [["send", "FILE"], ["status", "some-id"]])
def test_redis_down_is_one_clear_line(tmp_path: Path, command: list[str]) -> None:
    path = tmp_path / "flow.json"
    path.write_text(json.dumps({"messages": [sms_step(recipient())]}))
    args = [str(path) if part == "FILE" else part for part in command]
    result = otpflow(*args, redis_url=f"redis://127.0.0.1:{free_port()}/0")
    assert result.returncode == 1
    assert "is Redis running" in result.stderr
    assert "Traceback" not in result.stderr
