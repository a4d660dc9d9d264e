"""HMAC signatures: the token in every DLR callback URL and the switch webhook signature."""

from __future__ import annotations

import hashlib
import hmac


class BadToken(ValueError):
    """A DLR callback token that is malformed or not ours."""


def _mac(secret: str, message: str) -> str:
    return hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest()


def dlr_token(secret: str, provider: str, flow_id: str, step: int) -> str:
    """A token naming one (flow, step) for one provider; it cannot be forged without the secret."""
    return f"{flow_id}.{step}.{_mac(secret, f'dlr:{provider}:{flow_id}:{step}')[:40]}"


def read_dlr_token(secret: str, provider: str, token: str) -> tuple[str, int]:
    """Return (flow_id, step) of a valid token; raise BadToken otherwise."""
    flow_id, _, rest = token.partition(".")
    step_text, _, mac = rest.partition(".")
    if not (flow_id and step_text.isdigit() and mac):
        raise BadToken("malformed DLR token")
    expected = dlr_token(secret, provider, flow_id, int(step_text))
    if not hmac.compare_digest(expected.encode(), token.encode()):
        raise BadToken("DLR token does not match")
    return flow_id, int(step_text)


def webhook_signature(secret: str, timestamp: int, body: bytes) -> str:
    """``t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<raw body>">`` (SPEC §5)."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def verify_webhook_signature(secret: str, header: str, body: bytes) -> bool:
    """What a receiver does; used by the tests and offered to callers as reference."""
    parts = dict(item.split("=", 1) for item in header.split(",") if "=" in item)
    if "t" not in parts or "v1" not in parts or not parts["t"].isdigit():
        return False
    expected = webhook_signature(secret, int(parts["t"]), body)
    return hmac.compare_digest(expected.encode(), header.encode())
