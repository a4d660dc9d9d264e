"""The producer client against a real Redis, with the broker in memory."""

from __future__ import annotations

import pytest
import redis

from otpflow.config.settings import Settings
from otpflow.flow.models import InvalidRequest
from otpflow.producers import OtpflowClient

SMS = {
    "channel": "sms",
    "timeout": 5,
    "messageType": "",
    "data": {"recipient": "919876543210", "message": "Code 1", "sender_id": "A", "route": "otp"},
}


def client(redis_client: redis.Redis, **routes: str) -> OtpflowClient:
    settings = Settings(broker_url="memory://", routes={"sms": "zixflow", **routes})
    return OtpflowClient(settings, redis_client=redis_client)


def test_a_channel_without_a_provider_is_refused_before_anything_is_stored(
    redis_client: redis.Redis,
) -> None:
    otp = client(redis_client, sms="")
    with pytest.raises(InvalidRequest) as caught:
        otp.send({"messages": [SMS]})
    (error,) = caught.value.errors
    assert error.path == "messages.0.channel"
    assert "OTPFLOW_ROUTES__SMS" in error.message
    assert redis_client.keys("*") == []


def test_send_stores_marks_and_enqueues(redis_client: redis.Redis) -> None:
    otp = client(redis_client)
    flow_id = otp.send({"messages": [SMS]})
    assert redis_client.hget(f"otpflow:flow:{flow_id}", "enqueued") == b"1"
    view = otp.status(flow_id)
    assert view is not None and view.status == "queued"
