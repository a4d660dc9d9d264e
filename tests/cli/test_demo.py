"""``otpflow demo`` end to end, as a user runs it: real processes, clean exit, nothing left."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import redis

from otpflow.cli.demo import DEMO_DATABASES
from otpflow.cli.stack import free_port

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


STORY = (
    "step 0 sms: accepted by zixflow",
    "delivery report undelivered",
    "switch sms -> whatsapp",
    "step 1 whatsapp: accepted by zixflow",
    "flow delivered by step 1",
    "Webhook received: channel_switch sms -> whatsapp",
)
REAL_REDIS_URL = f"{REDIS_HOST}/9"


def demo_env(marker: str, redis_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTPFLOW_")}
    return env | {"OTPFLOW_REDIS_URL": redis_url, "DEMO_TEST_MARK": marker, "COLUMNS": "120"}


def run_demo(marker: str, redis_url: str = REAL_REDIS_URL) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "otpflow.cli.main", "demo", "--timeout", "60"],
        env=demo_env(marker, redis_url),
        capture_output=True,
        text=True,
        timeout=120,
    )


def assert_told_the_story(result: subprocess.CompletedProcess[str]) -> None:
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    for line in STORY:
        assert line in out, line
    assert "Traceback" not in out, out


@pytest.fixture(autouse=True)
def empty_demo_databases() -> None:
    """The suite's other tests use these databases too (harness.EMPTIED_DATABASES): a demo
    takes only an empty one."""
    for number in DEMO_DATABASES:
        client = redis.Redis.from_url(f"{REDIS_HOST}/{number}")
        client.flushdb()
        client.close()


def database_used(result: subprocess.CompletedProcess[str]) -> int:
    found = re.search(r" \(database (\d+), emptied at the end\)", result.stdout)
    assert found is not None, result.stdout
    return int(found[1])


def demo_data_left() -> list[str]:
    """Keys of OTPflow left on the test Redis: in the URL's database or a demo database."""
    left = []
    for number in (9, *DEMO_DATABASES):
        client = redis.Redis.from_url(f"{REDIS_HOST}/{number}")
        left += [f"db{number} {key.decode()}" for key in client.scan_iter("otpflow:*")]
        client.close()
    return left


@pytest.mark.parametrize("redis_kind", ["embedded", "real"])
def test_demo_runs_the_flow_and_leaves_no_process(redis_kind: str) -> None:
    marker = str(uuid.uuid4())
    url = f"redis://127.0.0.1:{free_port()}/0" if redis_kind == "embedded" else REAL_REDIS_URL
    result = run_demo(marker, url)
    assert_told_the_story(result)
    if redis_kind == "embedded":
        assert "started an embedded one" in result.stdout
    else:
        assert f"Using Redis at {url} (database" in result.stdout
        assert database_used(result) in DEMO_DATABASES
        assert demo_data_left() == []
    assert processes_with(marker) == []


def test_seven_demos_in_a_row_and_two_at_once_tell_the_same_story() -> None:
    # the 6th used to meet the per-recipient limit (429), and two at once the one-flow 409
    marker = str(uuid.uuid4())
    for _ in range(7):
        assert_told_the_story(run_demo(marker))
    with ThreadPoolExecutor(2) as pool:
        both = list(pool.map(run_demo, [marker, marker]))
    for result in both:
        assert_told_the_story(result)
    assert len({database_used(result) for result in both}) == 2
    assert demo_data_left() == []
    assert processes_with(marker) == []


@pytest.mark.parametrize(
    ("sig", "after"),
    [
        (signal.SIGTERM, "Starting simulator"),  # while its processes start
        (signal.SIGTERM, "Sent flow"),  # mid-flow
        (signal.SIGHUP, "Starting simulator"),
        (signal.SIGHUP, "Sent flow"),  # a closed terminal
    ],
)
def test_a_signalled_demo_leaves_no_process_and_no_data(sig: signal.Signals, after: str) -> None:
    marker = str(uuid.uuid4())
    demo = subprocess.Popen(
        [sys.executable, "-m", "otpflow.cli.main", "demo", "--timeout", "60"],
        env=demo_env(marker, REAL_REDIS_URL),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    seen = threading.Event()
    lines: list[str] = []

    def read() -> None:
        assert demo.stdout is not None
        for line in demo.stdout:
            lines.append(line)
            if after in line:
                seen.set()

    threading.Thread(target=read, daemon=True).start()
    assert seen.wait(60), "".join(lines)
    time.sleep(0.3)
    demo.send_signal(sig)
    assert demo.wait(60) == 128 + sig, "".join(lines)
    assert processes_with(marker) == []
    assert demo_data_left() == []
