"""The Zixflow adapter against seed 001 (SMS) and the ingest WhatsApp API, with MockTransport."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from otpflow.config.settings import ZixflowSettings
from otpflow.flow.models import FlowRequest, Step
from otpflow.flow.states import DlrStatus
from otpflow.providers.base import Callback
from otpflow.providers.errors import (
    AmbiguousSend,
    InvalidDlr,
    ProviderAuthError,
    ProviderBadReply,
    ProviderRateLimited,
    ProviderRejected,
    ProviderUnavailable,
    TransientProviderError,
)
from otpflow.providers.zixflow import ZixflowProvider

SETTINGS = ZixflowSettings(
    base_url="https://zix.example", api_key=SecretStr("k-123"), workspace_id="ws-9"
)
CALLBACK = Callback(url="https://otp.example/v1/dlr/zixflow?token=t0k", data="t0k")
OK = {
    "success": True,
    "message": "SMS request queued successfully",
    "request_id": "f8df74d1-11fa-4485-b164-b9a65358f4fc",
}


def step(channel: str, message_type: str, data: dict[str, Any]) -> Step:
    return FlowRequest.parse(
        {
            "messages": [
                {"channel": channel, "timeout": 5, "messageType": message_type, "data": data}
            ]
        }
    ).steps[0]


SMS = step(
    "sms",
    "",
    {
        "recipient": "919876543210",
        "message": "Your code is 4821",
        "sender_id": "ACME",
        "route": "otp",
        "dlt_entity_id": "E1",
        "post_back_url": "https://caller.example/dlr",
        "post_back_data": "order-7",
    },
)


def provider(handler: Any) -> ZixflowProvider:
    return ZixflowProvider(SETTINGS, httpx.Client(transport=httpx.MockTransport(handler)))


def capture(reply: httpx.Response) -> tuple[ZixflowProvider, list[httpx.Request]]:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return reply

    return provider(handler), seen


def test_sms_request_matches_seed_001() -> None:
    adapter, seen = capture(httpx.Response(200, json=OK))
    assert adapter.send(SMS, CALLBACK) == OK["request_id"]
    (request,) = seen
    assert request.method == "POST"
    assert str(request.url) == "https://zix.example/api/ingest/sms/v1/message/send"
    assert request.headers["x-api-key"] == "k-123"
    assert request.headers["x-workspace-id"] == "ws-9"
    assert request.headers["content-type"] == "application/json"
    assert json.loads(request.content) == {
        "recipient": "919876543210",
        "message": "Your code is 4821",
        "sender_id": "ACME",
        "route": "otp",
        "is_flash": False,
        "dlt_entity_id": "E1",
        # the provider reports to OTPflow's signed URL, never to the caller's
        "post_back_url": CALLBACK.url,
        "post_back_data": "t0k",
    }


INTERACTIVE = {
    "type": "button",
    "header": {"type": "text", "text": "ACME"},
    "body": {"text": "Your code is 4821"},
    "footer": {"text": "Do not share"},
    "action": {"buttons": [{"type": "reply", "reply": {"id": "ok", "title": "Got it"}}]},
}

WHATSAPP_CASES = [
    (
        "template",
        {
            "recipient": "919876543210",
            "phone_id": "p1",
            "template_name": "otp",
            "language": "en",
            "variables": {"1": "4821"},
        },
        "/api/ingest/whatsapp/v1/template/send",
        {
            "recipient": "919876543210",
            "phone_id": "p1",
            "template_name": "otp",
            "language": "en",
            "variables": {"1": "4821"},
        },
    ),
    (
        "custom",
        {"recipient": "919876543210", "phone_id": "p1", "text": "Code 4821"},
        "/api/ingest/whatsapp/v1/message/text/send",
        {"recipient": "919876543210", "phone_id": "p1", "text": "Code 4821", "preview_url": False},
    ),
    (
        "interactive",
        {
            "recipient": "919876543210",
            "phone_id": "p1",
            "interactive": INTERACTIVE,
        },
        "/api/ingest/whatsapp/v1/message/interactive/reply-buttons/send",
        {
            "recipient": "919876543210",
            "phone_id": "p1",
            "interactive": INTERACTIVE,
        },
    ),
]


@pytest.mark.parametrize(
    ("message_type", "data", "path", "body"), WHATSAPP_CASES, ids=[c[0] for c in WHATSAPP_CASES]
)
def test_whatsapp_requests(message_type: str, data: dict, path: str, body: dict) -> None:
    adapter, seen = capture(httpx.Response(200, json=OK))
    adapter.send(step("whatsapp", message_type, data), CALLBACK)
    (request,) = seen
    assert request.url.path == path
    assert request.headers["x-api-key"] == "k-123"
    assert json.loads(request.content) == body | {
        "post_back_url": CALLBACK.url,
        "post_back_data": "t0k",
    }


ERRORS = [
    (httpx.Response(401, json={"success": False, "message": "Invalid API key"}), ProviderAuthError),
    (httpx.Response(403, json={"success": False, "message": "Forbidden"}), ProviderAuthError),
    (
        httpx.Response(400, json={"success": False, "message": "Invalid recipient"}),
        ProviderRejected,
    ),
    (
        httpx.Response(200, json={"success": False, "message": "Insufficient balance"}),
        ProviderRejected,
    ),
    (httpx.Response(200, json={"success": True, "message": "queued"}), ProviderBadReply),
    (httpx.Response(200, text="<html>oops</html>"), ProviderBadReply),
    (httpx.Response(500, json={"success": False}), ProviderUnavailable),
    (httpx.Response(503, text="busy"), ProviderUnavailable),
    (httpx.Response(429, headers={"Retry-After": "3"}), ProviderRateLimited),
]


@pytest.mark.parametrize(
    ("reply", "error"), ERRORS, ids=[f"{r.status_code}-{e.__name__}" for r, e in ERRORS]
)
def test_replies_become_the_right_error(reply: httpx.Response, error: type[Exception]) -> None:
    adapter, _ = capture(reply)
    with pytest.raises(error):
        adapter.send(SMS, CALLBACK)


def test_rate_limit_keeps_retry_after() -> None:
    adapter, _ = capture(httpx.Response(429, headers={"Retry-After": "3"}))
    with pytest.raises(ProviderRateLimited) as caught:
        adapter.send(SMS, CALLBACK)
    assert caught.value.retry_after == 3.0
    assert isinstance(caught.value, TransientProviderError)


@pytest.mark.parametrize(
    ("exc", "error"),
    [
        (httpx.ConnectError("refused"), ProviderUnavailable),
        (httpx.ConnectTimeout("slow connect"), ProviderUnavailable),
        (httpx.ReadTimeout("no answer"), AmbiguousSend),
        (httpx.RemoteProtocolError("dropped"), AmbiguousSend),
    ],
)
def test_transport_errors(exc: Exception, error: type[Exception]) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise exc

    with pytest.raises(error) as caught:
        provider(handler).send(SMS, CALLBACK)
    assert caught.value.__cause__ is exc


def test_error_messages_never_echo_the_recipient() -> None:
    adapter, _ = capture(
        httpx.Response(
            400, json={"success": False, "message": "Number 919876543210 is on the DND list"}
        )
    )
    with pytest.raises(ProviderRejected) as caught:
        adapter.send(SMS, CALLBACK)
    assert "919876543210" not in str(caught.value)
    assert "DND list" in str(caught.value)


POSTBACK = {
    "workspace_id": "ws-9",
    "type": "delivery_status",
    "message_id": "m-1",
    "request_id": "r-1",
    "channel": "sms",
    "recipient": "919876543210",
    "status": "delivered",
    "remark": "ok",
    "status_at": "2026-11-22T10:00:00Z",
    "post_back_data": "t0k",
}


@pytest.mark.parametrize(
    ("raw", "normalised"),
    [
        ("delivered", DlrStatus.DELIVERED),
        ("read", DlrStatus.READ),
        ("failed", DlrStatus.FAILED),
        ("undelivered", DlrStatus.UNDELIVERED),
        ("expired", DlrStatus.EXPIRED),
        ("rejected", DlrStatus.REJECTED),
        ("sent", DlrStatus.SENT),
        ("queued", DlrStatus.ACCEPTED),
        ("Delivered", DlrStatus.DELIVERED),
    ],
)
def test_postback_statuses_normalise(raw: str, normalised: DlrStatus) -> None:
    (report,) = provider(lambda r: httpx.Response(500)).parse_dlr(POSTBACK | {"status": raw})
    assert report.status is normalised
    assert report.provider_status == raw
    assert report.message_id == "r-1"
    assert report.token == "t0k"


@pytest.mark.parametrize(
    "body",
    [
        [],
        "delivered",
        {"status": 3},
        POSTBACK | {"status": "lost"},
        {k: v for k, v in POSTBACK.items() if k != "status"},
    ],
)
def test_unreadable_postbacks_are_refused(body: Any) -> None:
    with pytest.raises(InvalidDlr):
        provider(lambda r: httpx.Response(500)).parse_dlr(body)


RCS_AND_EMAIL = [
    (
        "rcs",
        "text",
        {"recipient": "919876543210", "bot_id": "acme-bot", "text": "Code 4821"},
        "/api/ingest/rcs/v1/message/send",
        {"recipient": "919876543210", "bot_id": "acme-bot", "type": "text", "text": "Code 4821"},
    ),
    (
        "rcs",
        "document",
        {
            "recipient": "919876543210",
            "bot_id": "acme-bot",
            "media_url": "https://cdn.example/code.pdf",
            "caption": "Your code",
            "file_name": "code.pdf",
        },
        "/api/ingest/rcs/v1/message/send",
        {
            "recipient": "919876543210",
            "bot_id": "acme-bot",
            "type": "document",
            "media_url": "https://cdn.example/code.pdf",
            "caption": "Your code",
            "file_name": "code.pdf",
        },
    ),
    (
        "rcs",
        "template",
        {
            "recipient": "919876543210",
            "bot_id": "acme-bot",
            "template_name": "otp",
            "variables": {"code": "4821"},
        },
        "/api/ingest/rcs/v1/message/send",
        {
            "recipient": "919876543210",
            "bot_id": "acme-bot",
            "type": "template",
            "template_name": "otp",
            "variables": {"code": "4821"},
        },
    ),
    (
        "email",
        "",
        {
            "to": "ana@example.com",
            "from": "otp@acme.example",
            "subject": "Your code",
            "text": "Code 4821",
        },
        "/api/ingest/email/v1/send",
        {
            "to": "ana@example.com",
            "from": "otp@acme.example",
            "subject": "Your code",
            "text": "Code 4821",
        },
    ),
]


@pytest.mark.parametrize(
    ("channel", "message_type", "data", "path", "body"),
    RCS_AND_EMAIL,
    ids=[f"{c[0]}-{c[1]}" for c in RCS_AND_EMAIL],
)
def test_rcs_and_email_requests(
    channel: str, message_type: str, data: dict, path: str, body: dict
) -> None:
    adapter, seen = capture(httpx.Response(200, json=OK))
    adapter.send(step(channel, message_type, data), CALLBACK)
    (request,) = seen
    assert request.url.path == path
    assert request.headers["x-workspace-id"] == "ws-9"
    assert json.loads(request.content) == body | {
        "post_back_url": CALLBACK.url,
        "post_back_data": "t0k",
    }


def test_relay_gives_the_caller_its_own_post_back_data() -> None:
    adapter = provider(lambda r: httpx.Response(500))
    assert adapter.for_caller(POSTBACK, "order-7") == POSTBACK | {"post_back_data": "order-7"}
