"""HMAC keys and signatures: the token in every DLR callback URL and the webhook signatures.

``OTPFLOW_SECRET`` is never used as a key itself. Each purpose gets its own key, derived with
HMAC-SHA256 under a label (:func:`derive_key`), so a key handed out for one purpose opens no
other: a webhook receiver holds its workspace's webhook secret (:func:`webhook_secret`), from
which neither DLR tokens nor another workspace's webhooks can be made.

Rotation: tokens are minted with the current secret and read with it or any previous one
(``OTPFLOW_PREVIOUS_SECRETS``), so callbacks already handed to providers keep working.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Sequence
from datetime import UTC, datetime

from standardwebhooks import Webhook

from otpflow.flow.keyring import derive_key

DLR_TOKEN_PURPOSE = "dlr-token"
WEBHOOK_SIGNING_PURPOSE = "webhook-signing"
WEBHOOK_SECRET_PREFIX = "whsec_"
# how old a signed webhook a receiver accepts (the Standard Webhooks tolerance)
WEBHOOK_TOLERANCE_SECONDS = 300
# no flow has more steps than this has digits (a longer number is no step of ours)
MAX_STEP_DIGITS = 3


class BadToken(ValueError):
    """A DLR callback token that is malformed or not ours."""


def dlr_token(secret: str, provider: str, flow_id: str, step: int) -> str:
    """A token naming one (flow, step) for one provider; it cannot be forged without the secret."""
    key = derive_key(secret, DLR_TOKEN_PURPOSE)
    mac = hmac.new(key, f"{provider}:{flow_id}:{step}".encode(), hashlib.sha256).hexdigest()
    return f"{flow_id}.{step}.{mac[:40]}"


def read_dlr_token(secret: str | Sequence[str], provider: str, token: str) -> tuple[str, int]:
    """Return (flow_id, step) of a valid token; raise BadToken otherwise. ``secret`` is the
    current secret, or the current one and the previous ones still accepted."""
    secrets = [secret] if isinstance(secret, str) else list(secret)
    flow_id, _, rest = token.partition(".")
    step_text, _, mac = rest.partition(".")
    if not (flow_id and step_text.isdigit() and len(step_text) <= MAX_STEP_DIGITS and mac):
        raise BadToken("malformed DLR token")
    step = int(step_text)
    # every candidate is compared, so the time taken does not say which secret matched
    matches = [
        hmac.compare_digest(dlr_token(s, provider, flow_id, step).encode(), token.encode())
        for s in secrets
    ]
    if not any(matches):
        raise BadToken("DLR token does not match")
    return flow_id, step


def webhook_secret(secret: str, workspace: str) -> str:
    """The secret a workspace's receiver verifies its webhooks with, in the Standard Webhooks
    form ``whsec_<base64 key>``; ``otpflow webhook-secret --workspace W`` prints it."""
    key = hmac.new(
        derive_key(secret, WEBHOOK_SIGNING_PURPOSE), workspace.encode(), hashlib.sha256
    ).digest()
    return WEBHOOK_SECRET_PREFIX + base64.b64encode(key).decode()


def webhook_key(whsecret: str) -> bytes:
    """The raw HMAC key inside a ``whsec_`` secret."""
    return base64.b64decode(whsecret.removeprefix(WEBHOOK_SECRET_PREFIX))


def webhook_headers(whsecret: str, event_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The signature headers of one webhook: Standard Webhooks (``webhook-id``,
    ``webhook-timestamp``, ``webhook-signature: v1,<base64>`` over ``id.timestamp.body``) and,
    for receivers written before them, ``X-OTPflow-Signature`` and ``X-OTPflow-Event-Id``."""
    signature = Webhook(whsecret).sign(
        event_id, datetime.fromtimestamp(timestamp, UTC), body.decode()
    )
    return {
        "webhook-id": event_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature,
        "X-OTPflow-Signature": webhook_signature(whsecret, timestamp, body),
        "X-OTPflow-Event-Id": event_id,
    }


def webhook_signature(whsecret: str, timestamp: int, body: bytes) -> str:
    """``t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<raw body>">``, keyed by the key inside
    the workspace's webhook secret (the header before Standard Webhooks; it does not cover the
    event id, so prefer ``webhook-signature``)."""
    payload = f"{timestamp}.".encode() + body
    mac = hmac.new(webhook_key(whsecret), payload, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def verify_webhook_signature(
    whsecret: str,
    header: str,
    body: bytes,
    *,
    tolerance_seconds: int = WEBHOOK_TOLERANCE_SECONDS,
    now: float | None = None,
) -> bool:
    """What a receiver of ``X-OTPflow-Signature`` does: the signature matches and is at most
    ``tolerance_seconds`` old (or new), so a captured webhook cannot be replayed later."""
    parts = dict(item.split("=", 1) for item in header.split(",") if "=" in item)
    if "t" not in parts or "v1" not in parts or not parts["t"].isdigit():
        return False
    timestamp = int(parts["t"])
    if abs((time.time() if now is None else now) - timestamp) > tolerance_seconds:
        return False
    expected = webhook_signature(whsecret, timestamp, body)
    return hmac.compare_digest(expected.encode(), header.encode())
