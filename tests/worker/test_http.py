"""Provider calls end within the provider timeout in total, however slowly a provider answers:
httpx's own timeouts are per read, and the send lease counts on the total."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator

import httpx
import pytest
import redis

from otpflow.config.settings import Settings
from otpflow.flow.models import FlowRequest
from otpflow.providers.errors import AmbiguousSend
from otpflow.worker.http import deadline, http_client
from otpflow.worker.runtime import Runtime
from otpflow.worker.tasks import _send_counted

from harness import Receiver, trickle

ROUTE = {"route": "otp"}
SMS = {
    "messages": [
        {
            "channel": "sms",
            "timeout": 30,
            "messageType": "",
            "data": {"recipient": "447400123456", "message": "hi", "sender_id": "A"} | ROUTE,
        }
    ]
}


def slow_acceptance(conn: socket.socket) -> None:
    """A provider's yes, its body a byte every 0.25 s: each read well inside a 1 s timeout,
    the whole reply about 9 s."""
    body = json.dumps({"success": True, "request_id": "m1"}).encode()
    head = f"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {len(body)}"
    conn.sendall(head.encode() + b"\r\n\r\n")
    trickle(body, every=0.25)(conn)


@pytest.fixture
def provider_server() -> Iterator[Receiver]:
    receiver = Receiver(slow_acceptance)
    yield receiver
    receiver.close()


def test_a_provider_trickling_its_reply_is_cut_at_the_provider_timeout(
    provider_server: Receiver, redis_client: redis.Redis
) -> None:
    settings = Settings(
        provider_timeout_seconds=1.0,
        providers={"zixflow": {"base_url": f"http://127.0.0.1:{provider_server.port}"}},
    )
    rt = Runtime(settings)
    rt.__dict__["redis"] = redis_client  # the failure is counted in the test database
    provider = rt.providers["zixflow"]
    step = FlowRequest.parse(SMS).steps[0]
    # the request may have reached the provider: it is never sent again
    with pytest.raises(AmbiguousSend, match="Timeout"):
        _send_counted(rt, provider, step, "f1", 0)
    assert len(provider_server.requests) == 1


def test_a_call_inside_a_deadline_gets_only_what_is_left() -> None:
    receiver = Receiver(slow_acceptance)
    try:
        client = http_client(httpx.Timeout(1.0))
        with deadline(0.5), pytest.raises(httpx.TimeoutException):
            client.post(f"http://127.0.0.1:{receiver.port}/x", json={})
    finally:
        receiver.close()
