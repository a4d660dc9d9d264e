"""The receiver's check (otpflow.producers.webhooks): right secret, unaltered, at most 5 minutes
old, for Standard Webhooks headers and for the older X-OTPflow-Signature alone."""

from __future__ import annotations

import time

import pytest

from otpflow.flow.signing import webhook_headers, webhook_secret
from otpflow.producers.webhooks import InvalidWebhook, verify_webhook

SECRET = "verifier-tests-secret-at-least-32-bytes"
BODY = b'{"event":"channel_switch","request_id":"f1"}'


def signed(at: float, workspace: str = "acme") -> dict[str, str]:
    return webhook_headers(webhook_secret(SECRET, workspace), "f1:switch:0", int(at), BODY)


def legacy_only(headers: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in headers.items() if k.lower().startswith("x-otpflow")}


@pytest.mark.parametrize("shape", [dict, legacy_only])
def test_a_fresh_webhook_is_accepted(shape: type) -> None:
    headers = shape(signed(time.time()))
    assert verify_webhook(webhook_secret(SECRET, "acme"), headers, BODY)["request_id"] == "f1"


@pytest.mark.parametrize("shape", [dict, legacy_only])
def test_a_webhook_older_than_five_minutes_is_refused(shape: type) -> None:
    headers = shape(signed(time.time() - 301))
    with pytest.raises(InvalidWebhook):
        verify_webhook(webhook_secret(SECRET, "acme"), headers, BODY)


@pytest.mark.parametrize("shape", [dict, legacy_only])
def test_another_workspace_secret_or_an_altered_body_is_refused(shape: type) -> None:
    headers = shape(signed(time.time()))
    with pytest.raises(InvalidWebhook):
        verify_webhook(webhook_secret(SECRET, "other"), headers, BODY)
    with pytest.raises(InvalidWebhook):
        verify_webhook(webhook_secret(SECRET, "acme"), headers, BODY.replace(b"f1", b"f2"))


def test_the_event_id_is_covered_by_the_signature() -> None:
    headers = signed(time.time()) | {"webhook-id": "f1:switch:1"}
    with pytest.raises(InvalidWebhook):
        verify_webhook(webhook_secret(SECRET, "acme"), headers, BODY)


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {
            "webhook-signature": "garbage",
            "webhook-id": "x",
            "webhook-timestamp": str(int(time.time())),
        },
    ],
)
def test_unsigned_or_garbled_webhooks_are_refused(headers: dict[str, str]) -> None:
    with pytest.raises(InvalidWebhook):
        verify_webhook(webhook_secret(SECRET, "acme"), headers, BODY)
