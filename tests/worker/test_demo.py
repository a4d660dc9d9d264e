"""``otpflow demo`` end to end, as a user runs it: real processes, clean exit, nothing left."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from otpflow.worker.stack import free_port

from harness import REDIS_HOST

pytestmark = pytest.mark.integration


def processes_with(marker: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if f"DEMO_TEST_MARK={marker}".encode() in environ:
            found.append(int(entry.name))
    return found


@pytest.mark.parametrize("redis", ["embedded", "real"])
def test_demo_runs_the_flow_and_leaves_no_process(redis: str) -> None:
    marker = str(uuid.uuid4())
    url = f"redis://127.0.0.1:{free_port()}/0" if redis == "embedded" else f"{REDIS_HOST}/9"
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTPFLOW_")}
    env |= {"OTPFLOW_REDIS_URL": url, "DEMO_TEST_MARK": marker, "COLUMNS": "120"}
    result = subprocess.run(
        [sys.executable, "-m", "otpflow.worker.cli", "demo", "--timeout", "60"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    if redis == "embedded":
        assert "started an embedded one" in out
    else:
        assert f"Using Redis at {url}" in out
    for line in (
        "step 0 sms: accepted by zixflow",
        "delivery report undelivered",
        "switch sms -> whatsapp",
        "step 1 whatsapp: accepted by zixflow",
        "flow delivered by step 1",
        "Webhook received: channel_switch sms -> whatsapp",
    ):
        assert line in out, line
    assert processes_with(marker) == []
