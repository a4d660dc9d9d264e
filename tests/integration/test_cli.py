"""``otpflow send`` and ``otpflow status`` as a script or a person uses them, against the real
system: the installed console command follows a flow to its end, prints its timeline or its
JSON, and says the outcome in its exit code. (The error cases are in tests/cli/test_main.py.)
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from otpflow.api.schemas import flow_json
from otpflow.cli.stack import free_port

from harness import (
    BROKER_URL,
    HEADERS,
    STATE_URL,
    System,
    recipient,
    sms_step,
    wait_for,
    whatsapp_step,
)

pytestmark = pytest.mark.integration

OTPFLOW = shutil.which("otpflow", path=str(Path(sys.executable).parent)) or shutil.which("otpflow")


def otpflow(*args: str) -> subprocess.CompletedProcess[str]:
    assert OTPFLOW, "the otpflow console script is not installed (pip install -e .)"
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTPFLOW_")}
    env |= {
        "OTPFLOW_REDIS_URL": STATE_URL,
        "OTPFLOW_BROKER_URL": BROKER_URL,
        "COLUMNS": "120",
        "NO_COLOR": "1",
    }
    return subprocess.run([OTPFLOW, *args], env=env, capture_output=True, text=True, timeout=120)


def flow_file(tmp_path: Path, *steps: dict[str, Any]) -> str:
    path = tmp_path / "flow.json"
    path.write_text(json.dumps({"messages": list(steps)}))
    return str(path)


def step_row(stdout: str, index: int) -> list[str]:
    """The words of a step's row in the steps table."""
    return next(line.split() for line in stdout.splitlines() if line.split()[:1] == [str(index)])


def sms_undelivered(to: str) -> dict[str, Any]:
    """The simulator's rule for an SMS reported undelivered after 100 ms."""
    return {
        "channel": "sms",
        "recipient": to,
        "action": "fail",
        "status": "undelivered",
        "delay_ms": 100,
    }


def sms_fails_whatsapp_delivers(system: System) -> str:
    to = recipient()
    system.rules(
        sms_undelivered(to),
        {"channel": "whatsapp", "recipient": to, "action": "deliver", "delay_ms": 100},
    )
    return to


def test_send_follows_the_flow_to_its_end_and_prints_its_timeline(
    system: System, tmp_path: Path
) -> None:
    to = sms_fails_whatsapp_delivers(system)
    result = otpflow("send", flow_file(tmp_path, sms_step(to), whatsapp_step(to)))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    found = re.search(r"accepted: request id ([0-9a-f-]{36})", result.stdout)
    assert found, result.stdout
    request_id = found.group(1)
    view = system.flow(request_id)  # it had ended when the command returned
    assert view.status == "delivered"

    out = result.stdout
    assert f"flow {request_id}  delivered by step 1 (whatsapp) after" in out
    sms, whatsapp = step_row(out, 0), step_row(out, 1)
    assert sms[:4] == ["0", "sms", "zixflow", "failed"] and "undelivered" in sms
    assert whatsapp[:4] == ["1", "whatsapp", "(custom)", "zixflow"]
    assert whatsapp[4] == "delivered"
    for event in (
        "flow created with 2 steps",
        "step 0 sms: accepted by zixflow",
        "step 0 sms: delivery report undelivered",
        "switch sms -> whatsapp (step 0 failed: dlr_undelivered)",
        "step 1 whatsapp: accepted by zixflow",
        "flow delivered by step 1",
    ):
        assert event in out, event
    assert re.search(r"\+\d+\.\d\ds  flow delivered by step 1", out)  # relative times
    assert "\x1b[" not in out  # NO_COLOR: plain text
    assert to not in out + result.stderr


def test_send_json_prints_only_the_final_flow(system: System, tmp_path: Path) -> None:
    to = sms_fails_whatsapp_delivers(system)
    result = otpflow("send", flow_file(tmp_path, sms_step(to), whatsapp_step(to)), "--json")
    assert result.returncode == 0, result.stderr
    sent = json.loads(result.stdout)  # nothing but JSON on stdout
    view = system.flow(sent["request_id"])
    assert sent == flow_json(view)
    assert sent["status"] == "delivered"
    assert [(s["channel"], s["status"]) for s in sent["steps"]] == [
        ("sms", "failed"),
        ("whatsapp", "delivered"),
    ]
    status = otpflow("status", sent["request_id"], "--json")
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout) == sent


def test_send_no_wait_prints_the_id_and_status_shows_the_flow(
    system: System, tmp_path: Path
) -> None:
    to = sms_fails_whatsapp_delivers(system)
    as_json = otpflow(
        "send", flow_file(tmp_path, sms_step(to), whatsapp_step(to)), "--no-wait", "--json"
    )
    assert as_json.returncode == 0, as_json.stderr
    first = json.loads(as_json.stdout)
    assert list(first) == ["request_id"]
    other = recipient()
    plain = otpflow("send", flow_file(tmp_path, sms_step(other)), "--no-wait")
    assert plain.returncode == 0, plain.stderr
    assert re.fullmatch(r"[0-9a-f-]{36}\n", plain.stdout)
    assert system.flow(plain.stdout.strip()).steps[0].channel == "sms"

    system.wait_terminal(first["request_id"])
    table = otpflow("status", first["request_id"])
    assert table.returncode == 0, table.stderr
    assert f"flow {first['request_id']}  delivered by step 1 (whatsapp)" in table.stdout
    assert step_row(table.stdout, 0)[:4] == ["0", "sms", "zixflow", "failed"]
    assert "switch sms -> whatsapp" in table.stdout
    assert to not in table.stdout


def test_send_exits_1_when_the_flow_fails(system: System, tmp_path: Path) -> None:
    to = recipient()
    system.rules(sms_undelivered(to))
    result = otpflow("send", flow_file(tmp_path, sms_step(to)))
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    # the reason follows, on the same line or (narrower) the next one
    assert re.search(r"flow \S+  failed after [0-9.]+ s:\s+dlr_undelivered\n", result.stdout)
    assert step_row(result.stdout, 0)[:4] == ["0", "sms", "zixflow", "failed"]
    assert "flow failed: dlr_undelivered" in result.stdout


def test_send_gives_up_at_its_timeout_with_one_line(system: System, tmp_path: Path) -> None:
    to = recipient()
    system.rules({"channel": "sms", "recipient": to, "action": "never"})
    # the SMS waits 60 s for a report that never comes: the flow cannot end within 1 s
    result = otpflow("send", flow_file(tmp_path, sms_step(to, timeout=60)), "--timeout", "1")
    assert result.returncode == 1, result.stdout + result.stderr
    request_id = re.search(r"request id (\S+)", result.stdout)
    assert request_id, result.stdout
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert lines[0].startswith(f"error: flow {request_id.group(1)} had not ended after 1 s")
    assert f"otpflow status {request_id.group(1)}" in lines[0]
    assert not system.flow(request_id.group(1)).terminal


def test_the_api_serves_from_several_processes(system: System) -> None:
    """``otpflow api --processes 2``: uvicorn's workers, each building its own app from the
    environment, answer on one port and see the same flows."""
    port = free_port()
    env = system.stack.env() | {"OTPFLOW_LOG_LEVEL": "WARNING"}
    command = [OTPFLOW or "otpflow", "api", "--port", str(port), "--processes", "2"]
    api = subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True
    )
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5) as http:
            wait_for(
                lambda: http.get("/readyz").status_code == 200,
                timeout=60,
                what="the API's processes to answer",
                ignoring=(httpx.HTTPError,),
            )
            request_id = system.start({"messages": [sms_step(recipient())]})
            for _ in range(10):
                reply = http.get(f"/v1/otpflow/{request_id}", headers=HEADERS)
                assert reply.status_code == 200 and reply.json()["request_id"] == request_id
        children = Path(f"/proc/{api.pid}/task/{api.pid}/children").read_text().split()
        assert len(children) >= 2, "one process per --processes, under uvicorn's supervisor"
    finally:
        os.killpg(api.pid, signal.SIGTERM)
        api.wait(30)
