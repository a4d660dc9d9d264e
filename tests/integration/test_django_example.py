"""The Django example (examples/django_app) against the real system.

The example runs in its own process, with its directory as the working directory, so its
``config`` settings package and Django's settings never meet this test process. It is driven
through Django's test client by examples/django_app/drive.py, one JSON line per request.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness import REDIS_HOST, System, recipient, start_system, stop_system

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "django_app"
STATE_URL = f"{REDIS_HOST}/10"
BROKER_URL = f"{REDIS_HOST}/11"


class DjangoExample:
    """The example project in a child process: send a request, read its JSON answer."""

    def __init__(self, system: System) -> None:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("OTPFLOW_") and k != "DJANGO_SETTINGS_MODULE"
        }
        env |= {
            "OTPFLOW_REDIS_URL": system.stack.redis_url,
            "OTPFLOW_BROKER_URL": system.stack.broker_url,
            # every OTPflow process shares the secret: codes and recipient keys derive from it
            "OTPFLOW_SECRET": system.stack.secret,
            "PYTHONWARNINGS": "ignore",
        }
        self.process = subprocess.Popen(
            [sys.executable, "drive.py"],
            cwd=EXAMPLE,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def ask(self, command: dict[str, Any]) -> dict[str, Any]:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(json.dumps(command) + "\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        assert line, f"the example exited ({self.process.poll()}); see its stderr above"
        answer: dict[str, Any] = json.loads(line)
        return answer

    def get(self, path: str) -> dict[str, Any]:
        return self.ask({"method": "get", "path": path})

    def post(self, path: str, body: Any) -> dict[str, Any]:
        return self.ask({"method": "post", "path": path, "json": body})

    def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@pytest.fixture(scope="module")
def django_system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    running = start_system(
        tmp_path_factory.mktemp("django-example"),
        state_url=STATE_URL,
        broker_url=BROKER_URL,
        workers=1,
    )
    yield running
    stop_system(running)


@pytest.fixture(scope="module")
def example(django_system: System) -> Iterator[DjangoExample]:
    running = DjangoExample(django_system)
    yield running
    running.close()


def test_config_names_do_not_clash(example: DjangoExample) -> None:
    where = example.ask({"method": "imports"})
    assert Path(where["config"]) == EXAMPLE / "config" / "__init__.py"
    assert where["config_settings_has_otpflow"], "config.settings is the example's settings"
    assert Path(where["otpflow_config"]) == ROOT / "config" / "__init__.py"
    assert where["otpflow_settings_has_Settings"], "otpflow.config is still OTPflow's"


def test_send_status_and_verify(django_system: System, example: DjangoExample) -> None:
    to = recipient()
    started = example.post("/otp/", {"phone": to})
    assert started["status"] == 202, started
    request_id = started["body"]["request_id"]

    (sms,) = django_system.wait(
        lambda: django_system.sim_requests(recipient=to, channel="sms"), what="the SMS"
    )
    match = re.fullmatch(r"Your code is (\d{6})", sms["body"]["message"])
    assert match, sms["body"]
    code = match.group(1)

    status = example.get(f"/otp/{request_id}/")
    assert status["status"] == 200, status
    assert status["body"]["request_id"] == request_id
    assert status["body"]["status"] in ("queued", "in_progress", "delivered")
    assert [step["channel"] for step in status["body"]["steps"]] == ["sms", "whatsapp"]

    wrong = "000000" if code != "000000" else "111111"
    refused = example.post(f"/otp/{request_id}/verify/", {"code": wrong})
    assert refused["status"] == 400 and refused["body"]["attempts_left"] == 4, refused

    verified = example.post(f"/otp/{request_id}/verify/", {"code": code})
    assert verified["status"] == 200 and verified["body"]["status"] == "verified", verified
    assert example.get(f"/otp/{request_id}/")["body"]["status"] == "verified"

    again = example.post(f"/otp/{request_id}/verify/", {"code": code})
    assert again["status"] == 409, again


def test_bad_phone_is_a_400_naming_the_field(django_system: System, example: DjangoExample) -> None:
    before = django_system.state.keys("otpflow:flow:*")
    refused = example.post("/otp/", {"phone": "not a number"})
    assert refused["status"] == 400, refused
    fields = [error["field"] for error in refused["body"]["errors"]]
    assert "messages.0.data.recipient" in fields, fields
    assert refused["headers"]["Content-Type"] == "application/json"
    assert django_system.state.keys("otpflow:flow:*") == before, "nothing is stored"


def test_unknown_flow_is_a_404(example: DjangoExample) -> None:
    missing = "00000000-0000-0000-0000-000000000000"
    assert example.get(f"/otp/{missing}/")["status"] == 404
    assert example.post(f"/otp/{missing}/verify/", {"code": "123456"})["status"] == 404
