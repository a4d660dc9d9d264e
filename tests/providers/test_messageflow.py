"""The MessageFlow adapter against seed 002: path, headers, body, reply and report statuses."""

from __future__ import annotations

import json

import httpx
import pytest
from pydantic import SecretStr

from otpflow.config.settings import MessageFlowSettings
from otpflow.flow.states import DlrStatus
from otpflow.providers.errors import (
    InvalidDlr,
    ProviderAuthError,
    ProviderBadReply,
    ProviderRejected,
    ProviderUnavailable,
)
from otpflow.providers.messageflow import MessageFlowProvider

from provider_contract import CALLBACK, PHONE, recording, step

SETTINGS = MessageFlowSettings(
    base_url="https://mf.example", application_key=SecretStr("app"), authorization=SecretStr("tok")
)
SMS = step(
    "sms", "", {"recipient": PHONE, "message": "Code 4821", "sender_id": "ACME", "route": "otp"}
)
OK = {
    "meta": {"status": 201, "numberOfErrors": 0, "numberOfData": 1},
    "data": [{"smsId": "mf-1", "phoneNumber": "+" + PHONE, "externalId": "t0k"}],
    "errors": [],
}


def test_request_matches_seed_002() -> None:
    client, seen = recording(httpx.Response(201, json=OK))
    assert MessageFlowProvider(SETTINGS, client).send(SMS, CALLBACK) == "mf-1"
    (request,) = seen
    assert str(request.url) == "https://mf.example/v2.1/sms"
    assert request.headers["Application-Key"] == "app"
    assert request.headers["Authorization"] == "tok"
    assert json.loads(request.content) == {
        "sender": "ACME",
        "message": "Code 4821",
        "phoneNumbers": ["+" + PHONE],
        "priority": True,
        "webhookUrl": CALLBACK.url,
        "externalId": "t0k",
    }


@pytest.mark.parametrize(
    ("reply", "error"),
    [
        (httpx.Response(401, json={"errors": [{"title": "Unauthorized"}]}), ProviderAuthError),
        (
            httpx.Response(
                400, json={"errors": [{"title": "Validation error", "message": "sender: too long"}]}
            ),
            ProviderRejected,
        ),
        (
            httpx.Response(201, json=OK | {"errors": [{"title": "Invalid phone number"}]}),
            ProviderRejected,
        ),
        (httpx.Response(201, json=OK | {"data": []}), ProviderBadReply),
        (httpx.Response(503), ProviderUnavailable),
    ],
)
def test_replies_become_the_right_error(reply: httpx.Response, error: type[Exception]) -> None:
    client, _ = recording(reply)
    with pytest.raises(error):
        MessageFlowProvider(SETTINGS, client).send(SMS, CALLBACK)


@pytest.mark.parametrize(
    ("raw", "normalised"),
    [
        ("Delivered", DlrStatus.DELIVERED),
        ("Undelivered", DlrStatus.UNDELIVERED),
        ("Expired", DlrStatus.EXPIRED),
    ],
)
def test_report_statuses_normalise(raw: str, normalised: DlrStatus) -> None:
    provider = MessageFlowProvider(SETTINGS, recording(httpx.Response(500))[0])
    (report,) = provider.parse_dlr([{"smsId": "mf-1", "status": raw, "externalId": "t0k"}])
    assert (report.status, report.message_id, report.token) == (normalised, "mf-1", "t0k")


def test_batched_reports_and_relay_format() -> None:
    provider = MessageFlowProvider(SETTINGS, recording(httpx.Response(500))[0])
    batch = [
        {"smsId": "mf-1", "status": "Delivered", "externalId": "t0k"},
        {"smsId": "mf-1", "status": "Expired", "externalId": "t0k"},
    ]
    assert [r.status for r in provider.parse_dlr(batch)] == [DlrStatus.DELIVERED, DlrStatus.EXPIRED]
    assert provider.for_caller(batch, "order-7")[0]["externalId"] == "order-7"
    with pytest.raises(InvalidDlr):
        provider.parse_dlr([{"smsId": "mf-1", "status": "Lost"}])
