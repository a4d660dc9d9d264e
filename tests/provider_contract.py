"""Helpers shared by the provider adapter contract tests (tests/providers)."""

from __future__ import annotations

from typing import Any

import httpx

from otpflow.flow.models import FlowRequest, Step
from otpflow.providers.base import Callback

CALLBACK = Callback(url="https://otp.example/v1/dlr/p?token=t0k", data="t0k")
PHONE = "919876543210"


def step(channel: str, message_type: str, data: dict[str, Any]) -> Step:
    request = {
        "messages": [{"channel": channel, "timeout": 5, "messageType": message_type, "data": data}]
    }
    return FlowRequest.parse(request).steps[0]


def recording(reply: httpx.Response) -> tuple[httpx.Client, list[httpx.Request]]:
    """An HTTP client whose every request is recorded and answered with `reply`."""
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return reply

    return httpx.Client(transport=httpx.MockTransport(handler)), seen
