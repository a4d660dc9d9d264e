"""The Flask example app (examples/flask_app) on its own real system, driven by Flask's client."""

from __future__ import annotations

import importlib.util
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from otpflow.producers.flask import OTPflow

from harness import REDIS_HOST, System, recipient, start_system, stop_system

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
# databases reserved for this module: the session system uses others
STATE_URL, BROKER_URL = f"{REDIS_HOST}/1", f"{REDIS_HOST}/2"


def load_example() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "otpflow_flask_example", ROOT / "examples" / "flask_app" / "app.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def flask_system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    running = start_system(
        tmp_path_factory.mktemp("flask-example"),
        state_url=STATE_URL,
        broker_url=BROKER_URL,
        workers=1,
    )
    yield running
    stop_system(running)


@pytest.fixture(scope="module")
def app(flask_system: System) -> Iterator[Flask]:
    app = load_example().create_app(
        {
            "TESTING": True,
            "OTPFLOW_REDIS_URL": flask_system.stack.redis_url,
            "OTPFLOW_BROKER_URL": flask_system.stack.broker_url,
            # every OTPflow process shares the secret: codes and recipient keys derive from it
            "OTPFLOW_SECRET": flask_system.stack.secret,
            "OTPFLOW_LIMITS__RECIPIENT_FLOWS": 3,
        }
    )
    yield app
    OTPflow().reset(app)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def code_sent_to(system: System, to: str) -> str:
    (sms,) = system.wait(
        lambda: system.sim_requests(recipient=to, channel="sms"), what="the SMS with the code"
    )
    match = re.fullmatch(r"Hi Asha, your ACME code is (\d{6})", sms["body"]["message"])
    assert match, sms["body"]["message"]
    return match.group(1)


def test_config_keys_become_settings(app: Flask, flask_system: System) -> None:
    with app.app_context():
        settings = OTPflow().settings()
        assert OTPflow().client is app.extensions["otpflow"].get()  # one per app
    assert settings.redis_url == flask_system.stack.redis_url
    assert settings.broker_url == flask_system.stack.broker_url
    assert settings.secret.get_secret_value() == flask_system.stack.secret
    assert settings.limits.recipient_flows == 3


def test_code_by_sms_then_verified(flask_system: System, client: FlaskClient) -> None:
    to = recipient()
    flask_system.rules({"channel": "sms", "recipient": to, "action": "never"})
    started = client.post("/otp", json={"phone": to, "name": "Asha"})
    assert started.status_code == 202, started.get_data(as_text=True)
    request_id = started.get_json()["request_id"]

    code = code_sent_to(flask_system, to)
    view: dict[str, Any] = flask_system.wait(
        lambda: (
            (v := client.get(f"/otp/{request_id}").get_json())["steps"][0]["status"] == "sent" and v
        ),
        what="the SMS step to be sent",
    )
    assert view["request_id"] == request_id and view["status"] == "in_progress"
    assert [s["channel"] for s in view["steps"]] == ["sms", "whatsapp"]
    assert view["steps"][0]["status"] == "sent" and view["steps"][1]["status"] == "pending"

    wrong = str((int(code) + 1) % 1_000_000).zfill(6)
    miss = client.post(f"/otp/{request_id}/verify", json={"code": wrong})
    assert miss.status_code == 400 and miss.get_json()["attempts_left"] == 4
    right = client.post(f"/otp/{request_id}/verify", json={"code": code})
    assert right.status_code == 200
    assert right.get_json() == {"success": True, "message": "code verified", "status": "verified"}
    again = client.post(f"/otp/{request_id}/verify", json={"code": code})
    assert again.status_code == 409

    ended = client.get(f"/otp/{request_id}")
    assert ended.status_code == 200
    assert ended.get_json()["status"] == "verified"
    assert ended.get_json()["steps"][1]["status"] == "skipped"
    assert flask_system.sim_requests(recipient=to, channel="whatsapp") == []


def test_bad_phone_is_a_400_naming_the_field(flask_system: System, client: FlaskClient) -> None:
    before = flask_system.state.keys("otpflow:flow:*")
    reply = client.post("/otp", json={"phone": "not-a-phone", "name": "Asha"})
    assert reply.status_code == 400
    body = reply.get_json()
    assert body["success"] is False
    assert "messages.0.data.recipient" in {error["field"] for error in body["errors"]}
    assert flask_system.state.keys("otpflow:flow:*") == before


def test_unknown_id_is_a_404(client: FlaskClient) -> None:
    unknown = str(uuid.uuid4())
    assert client.get(f"/otp/{unknown}").status_code == 404
    assert client.post(f"/otp/{unknown}/verify", json={"code": "123456"}).status_code == 404
