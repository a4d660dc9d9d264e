"""The API's error replies, in process (Starlette's test client is the real app)."""

from __future__ import annotations

from typing import Any

import pytest
import redis
from fastapi.testclient import TestClient
from kombu.exceptions import OperationalError

from otpflow.config.settings import Settings
from otpflow.producers import OtpflowClient
from otpflow.worker.api import create_app

HEADERS = {"x-api-key": "demo-key", "x-workspace-id": "demo"}
FLOW: dict[str, Any] = {
    "messages": [
        {
            "channel": "sms",
            "timeout": 30,
            "messageType": "",
            "data": {
                "recipient": "919876543210",
                "message": "Code 1",
                "sender_id": "A",
                "route": "otp",
            },
        }
    ],
    "webhookurl": "https://app.example/otp",
    "webhookEvents": ["terminal"],
}


@pytest.fixture
def otp(redis_client: redis.Redis) -> OtpflowClient:
    settings = Settings(broker_url="memory://", api_keys="demo:demo-key")
    return OtpflowClient(settings, redis_client=redis_client)


def api(otp: OtpflowClient) -> TestClient:
    return TestClient(create_app(otp.settings, otp), raise_server_exceptions=False)


@pytest.mark.parametrize("action", ["cancel", "verify"])
def test_redis_failing_after_the_ownership_check_is_a_503(
    otp: OtpflowClient, action: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    flow_id = otp.send(FLOW, workspace="demo")

    def down(*_: Any) -> None:
        raise redis.ConnectionError("connection refused")

    monkeypatch.setattr(otp.store, action, down)
    body = {"code": "123456"} if action == "verify" else None
    reply = api(otp).post(f"/v1/otpflow/{flow_id}/{action}", headers=HEADERS, json=body)
    assert reply.status_code == 503
    assert reply.json() == {"success": False, "message": "flow store (Redis) is unreachable"}


def test_a_cancel_that_took_effect_is_answered_even_if_its_webhook_cannot_be_enqueued(
    otp: OtpflowClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    flow_id = otp.send(FLOW, workspace="demo")

    def broker_down(*_: Any, **__: Any) -> None:
        raise OperationalError("broker unreachable")

    monkeypatch.setattr(otp.celery, "send_task", broker_down)
    reply = api(otp).post(f"/v1/otpflow/{flow_id}/cancel", headers=HEADERS)
    assert reply.status_code == 200
    assert reply.json()["status"] == "cancelled"
    view = otp.status(flow_id)
    assert view is not None and view.status == "cancelled"


def test_a_send_refused_for_redis_says_nothing_was_stored(
    otp: OtpflowClient, redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    def down(*_: Any, **__: Any) -> None:
        raise redis.ConnectionError("connection refused")

    monkeypatch.setattr(otp.store, "create", down)
    reply = api(otp).post("/v1/otpflow", headers=HEADERS, json=FLOW)
    assert reply.status_code == 503
    assert reply.json()["message"].endswith("nothing was stored, try again")
    assert redis_client.keys("otpflow:flow:*") == []


def test_with_the_development_defaults_a_flow_sent_from_python_is_read_back_over_http(
    redis_client: redis.Redis, clean_env: None
) -> None:
    # `otpflow send` and the Django/Flask helpers send to the default workspace
    otp = OtpflowClient(Settings(broker_url="memory://"), redis_client=redis_client)
    flow_id = otp.send(FLOW)
    headers = {"x-api-key": "demo-key", "x-workspace-id": "default"}
    reply = api(otp).get(f"/v1/otpflow/{flow_id}", headers=headers)
    assert reply.status_code == 200, reply.text
    assert reply.json()["request_id"] == flow_id
