"""The JSON gateway adapter against seed 003: body, per-item replies, errors, reports."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from otpflow.config.settings import GatewaySettings
from otpflow.flow.states import DlrStatus
from otpflow.providers.errors import (
    InvalidDlr,
    ProviderAuthError,
    ProviderBadReply,
    ProviderRejected,
)
from otpflow.providers.gateway import GatewayProvider, item_id

from provider_contract import CALLBACK, PHONE, recording, step

SETTINGS = GatewaySettings(base_url="https://gw.example", auth=SecretStr("secret-auth"))
OK = {
    "success": True,
    "data": [{"success": True, "data": {"id": 1, "msg_id": 123456789, "data": 1, "parts": 1}}],
}

CASES: list[tuple[str, str, dict[str, Any], dict[str, Any]]] = [
    (
        "voice",
        "",
        {
            "recipient": PHONE,
            "message": "Your code is 100500",
            "voice": {"gender": "female", "language": "en-GB", "name": "en-GB-Standard-A"},
        },
        {
            "message": "Your code is 100500",
            "dtmf": False,
            "voice": {"gender": "female", "language": "en-GB", "name": "en-GB-Standard-A"},
        },
    ),
    ("telegram", "", {"recipient": PHONE, "code": "100500"}, {"message": "100500"}),
    (
        "viber",
        "",
        {
            "recipient": PHONE,
            "type": "text",
            "signature": "SenderID",
            "message": "Your code is 100500",
        },
        {"type": "text", "signature": "SenderID", "message": "Your code is 100500"},
    ),
    (
        "sms",
        "",
        {"recipient": PHONE, "message": "Code 1", "sender_id": "ACME", "route": "otp"},
        {"signature": "ACME", "message": "Code 1"},
    ),
    (
        "whatsapp",
        "custom",
        {"recipient": PHONE, "phone_id": "SenderID", "text": "Code 1"},
        {"signature": "SenderID", "message": "Code 1"},
    ),
    (
        "rcs",
        "text",
        {"recipient": PHONE, "bot_id": "SenderID", "text": "Code 1"},
        {"signature": "SenderID", "message": "Code 1"},
    ),
]


@pytest.mark.parametrize(
    ("channel", "message_type", "data", "expected"), CASES, ids=[c[0] for c in CASES]
)
def test_one_pipeline_item_per_step(
    channel: str, message_type: str, data: dict, expected: dict
) -> None:
    client, seen = recording(httpx.Response(200, json=OK))
    provider = GatewayProvider(SETTINGS, client)
    assert provider.send(step(channel, message_type, data), CALLBACK) == "123456789"
    (request,) = seen
    assert str(request.url) == "https://gw.example/api/json.php"
    assert request.headers["content-type"] == "application/json"
    assert json.loads(request.content) == {
        "auth": "secret-auth",
        "data": [
            {
                "type": "pipeline",
                "pipeline": [channel],
                "id": item_id(CALLBACK),
                "phone": int(PHONE),
                channel: expected,
                "hook": CALLBACK.url,
            }
        ],
    }


@pytest.mark.parametrize(
    ("reply", "error"),
    [
        ({"success": False, "error": "Access denied"}, ProviderAuthError),
        (
            {
                "success": True,
                "data": [{"success": False, "error": "Error in Alpha-name", "data": {"id": 1}}],
            },
            ProviderRejected,
        ),
        ({"success": True, "data": []}, ProviderBadReply),
    ],
)
def test_documented_errors(reply: dict, error: type[Exception]) -> None:
    client, _ = recording(httpx.Response(200, json=reply))
    sms = step(*CASES[3][:3])
    with pytest.raises(error) as caught:
        GatewayProvider(SETTINGS, client).send(sms, CALLBACK)
    if "error" in str(reply):
        assert ("Access denied" in str(caught.value)) or ("Alpha-name" in str(caught.value))


def test_media_rcs_is_not_for_the_gateway() -> None:
    image = step(
        "rcs", "image", {"recipient": PHONE, "bot_id": "b", "media_url": "https://x.example/a.png"}
    )
    with pytest.raises(ProviderRejected):
        GatewayProvider(SETTINGS, recording(httpx.Response(200, json=OK))[0]).send(image, CALLBACK)


@pytest.mark.parametrize(
    ("raw", "normalised"),
    [
        ("delivered", DlrStatus.DELIVERED),
        ("undelivered", DlrStatus.UNDELIVERED),
        ("expired", DlrStatus.EXPIRED),
        ("rejected", DlrStatus.REJECTED),
        ("read", DlrStatus.READ),
    ],
)
def test_report_statuses_normalise(raw: str, normalised: DlrStatus) -> None:
    provider = GatewayProvider(SETTINGS, recording(httpx.Response(500))[0])
    (report,) = provider.parse_dlr({"id": 1, "msg_id": 5, "channel": "viber", "status": raw})
    assert (report.status, report.message_id, report.token) == (normalised, "5", None)
    with pytest.raises(InvalidDlr):
        provider.parse_dlr({"id": 1, "status": "teleported"})
