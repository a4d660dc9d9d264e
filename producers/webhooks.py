"""Check that a webhook came from OTPflow, in the app that receives it (Django, Flask, ...).

OTPflow signs every switch webhook and report relay per Standard Webhooks with the
workspace's webhook secret (``otpflow webhook-secret --workspace W`` prints it)::

    # Django
    event = verify_webhook(SECRET, request.headers, request.body)
    # Flask
    event = verify_webhook(SECRET, request.headers, request.get_data())

A signature older (or newer) than 5 minutes is refused, so a captured webhook cannot be
replayed later; a receiver that must not act twice on one event keeps the ``webhook-id``s it
has seen for that long.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from standardwebhooks import Webhook, WebhookVerificationError

from otpflow.flow.signing import verify_webhook_signature

__all__ = ["InvalidWebhook", "verify_webhook"]


class InvalidWebhook(ValueError):
    """Not signed by OTPflow with this secret, altered, or too old: answer 400 and drop it."""


def verify_webhook(whsecret: str, headers: Mapping[str, str], body: bytes) -> Any:
    """The webhook's JSON body, once its signature is checked; ``InvalidWebhook`` otherwise.

    ``webhook-signature`` (Standard Webhooks, covering the event id) is checked when present;
    a sender with only ``X-OTPflow-Signature`` (before Standard Webhooks) is checked by that,
    with the same 5-minute limit."""
    lower = {name.lower(): value for name, value in headers.items()}
    if "webhook-signature" in lower:
        try:
            return Webhook(whsecret).verify(body, lower)
        except (WebhookVerificationError, ValueError) as exc:
            raise InvalidWebhook(f"webhook signature refused: {exc}") from None
    legacy = lower.get("x-otpflow-signature")
    if legacy and verify_webhook_signature(whsecret, legacy, body):
        return json.loads(body)
    raise InvalidWebhook("webhook signature missing, wrong or older than 5 minutes")
