"""What a producer raises for its caller to answer, and the replies OTPflow's HTTP API gives
for each: Flask, Django and the API answer alike (``error_reply``, ``verify_reply``).

    InvalidRequest        400, naming every bad field (otpflow.flow.models)
    RateLimited           429 with Retry-After: an abuse limit says wait
    Conflict              409: an idempotency key or a running flow for the recipient
    FraudRefused          403 with a reason: the fraud guard
    ServiceUnavailable    503: Redis or the broker is down; nothing was stored
"""

from __future__ import annotations

from typing import Any

from otpflow.config.settings import Limits
from otpflow.flow.fraud import MESSAGES, Reason
from otpflow.flow.models import FieldError, InvalidRequest
from otpflow.flow.outcomes import Outcome
from otpflow.flow.states import Kind


class ServiceUnavailable(RuntimeError):
    """Redis or the broker cannot be reached; nothing was stored or enqueued."""


# what a producer (and the API, for a route's own read) says when Redis fails under a call
STORE_UNREACHABLE = "flow store (Redis) is unreachable"


class RateLimited(RuntimeError):
    """An abuse limit says no; try again after ``retry_after`` seconds."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Conflict(RuntimeError):
    """The request clashes with an earlier one (idempotency key, a flow still running)."""


class FraudRefused(RuntimeError):
    """The fraud guard refused the flow (see otpflow.flow.fraud); ``reason`` names the rule."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"refused by the fraud guard: {MESSAGES[Reason(reason)]}")
        self.reason = reason


def error_reply(exc: Exception) -> tuple[dict[str, Any], int, dict[str, str]]:
    """``(body, status, headers)`` for a producer error, shaped like OTPflow's HTTP API:
    InvalidRequest -> 400 naming each bad field, RateLimited -> 429 with Retry-After,
    Conflict -> 409, FraudRefused -> 403 with its ``reason``, ServiceUnavailable -> 503.
    Anything else is re-raised."""
    if isinstance(exc, InvalidRequest):
        errors = [{"field": error.path, "message": error.message} for error in exc.errors]
        return {"success": False, "message": f"invalid request: {exc}", "errors": errors}, 400, {}
    if isinstance(exc, RateLimited):
        headers = {"Retry-After": str(exc.retry_after)}
        return {"success": False, "message": str(exc)}, 429, headers
    if isinstance(exc, Conflict):
        return {"success": False, "message": str(exc)}, 409, {}
    if isinstance(exc, FraudRefused):
        return {"success": False, "message": str(exc), "reason": exc.reason}, 403, {}
    if isinstance(exc, ServiceUnavailable):
        return {"success": False, "message": str(exc)}, 503, {}
    raise exc


# what a producer raises for its caller to answer (a view can catch them all with this)
PRODUCER_ERRORS = (InvalidRequest, RateLimited, Conflict, FraudRefused, ServiceUnavailable)

VERIFY_REPLIES: dict[Kind, tuple[int, str]] = {
    Kind.VERIFIED: (200, "code verified"),
    Kind.WRONG: (400, "wrong code"),
    Kind.LOCKED: (423, "too many wrong codes: this flow is locked"),
    Kind.EXPIRED: (410, "no code to check: it expired, or this flow has none"),
    Kind.ALREADY_VERIFIED: (409, "the code was already verified"),
    Kind.BLOCKED: (429, "too many wrong codes for this recipient: try again later"),
    Kind.MISSING: (404, "no such flow"),
}


def verify_reply(outcome: Outcome) -> tuple[dict[str, Any], int]:
    """``(body, status)`` for the outcome of :meth:`OtpflowClient.verify`, shaped like
    OTPflow's HTTP API: 200 verified, 400 wrong (with ``attempts_left``), 423 locked, 410
    expired, 409 already verified, 404 no such flow."""
    status, message = VERIFY_REPLIES.get(outcome.kind, (409, f"cannot verify ({outcome.kind})"))
    body: dict[str, Any] = {"success": status == 200, "message": message}
    if outcome.kind == Kind.VERIFIED:
        body["status"] = "verified"
    elif outcome.kind == Kind.WRONG:
        body["attempts_left"] = int(outcome.detail)
    elif outcome.kind == Kind.BLOCKED:
        body["retry_after"] = int(outcome.detail)
    return body, status


def refusal(admitted: Outcome, limits: Limits) -> Exception:
    """What a producer raises for a new flow its recipients' limits refused."""
    if admitted.kind == Kind.VERIFY_BLOCKED:
        return RateLimited(
            f"too many wrong codes for a recipient: at most {limits.verify_failures} "
            f"every {limits.verify_failure_window_seconds} s",
            retry_after=int(admitted.detail),
        )
    if admitted.kind == Kind.TOO_MANY_MESSAGES:
        return InvalidRequest(
            [
                FieldError(
                    "messages",
                    f"sends more than {admitted.detail} messages to one recipient, the most "
                    f"one recipient may get every {limits.recipient_window_seconds} s",
                )
            ]
        )
    if admitted.kind in (Kind.RATE_LIMITED, Kind.MESSAGE_LIMITED):
        counted = (
            f"{limits.recipient_flows} flows"
            if admitted.kind == Kind.RATE_LIMITED
            else f"{limits.recipient_messages} messages (one per step)"
        )
        return RateLimited(
            f"at most {counted} per recipient every {limits.recipient_window_seconds} s",
            retry_after=int(admitted.detail),
        )
    if admitted.kind == Kind.ACTIVE:
        return Conflict(
            f"a flow ({admitted.detail}) is still running for this recipient; "
            "wait for it to end, or send allowConcurrent: true"
        )
    raise AssertionError(f"not a refusal: {admitted.kind}")
