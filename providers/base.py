"""What every provider adapter is: one ``send`` and one DLR parser.

An adapter is built from its settings and the process's one shared ``httpx.Client``; it never
reads settings or the environment itself. HTTP adapters send through :func:`send_json`, which
turns transport errors, status codes and unreadable 2xx replies into the error tree of
:mod:`.errors` in one place; an adapter only says where its reply keeps the message id.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import httpx

from otpflow.flow.models import Step
from otpflow.flow.redact import mask
from otpflow.flow.states import DlrStatus
from otpflow.providers.errors import (
    AmbiguousSend,
    InvalidDlr,
    ProviderAuthError,
    ProviderBadReply,
    ProviderRateLimited,
    ProviderRejected,
    ProviderUnavailable,
)


@dataclass(frozen=True)
class Callback:
    """Where and how the provider reports delivery for one step."""

    url: str  # OTPflow's own DLR URL, carrying the step's signed token
    data: str  # the same token, for providers that echo post_back_data


@dataclass(frozen=True)
class DeliveryReport:
    status: DlrStatus
    provider_status: str
    message_id: str | None
    token: str | None  # the callback token echoed back in the report, if any


class Provider(Protocol):
    name: str
    channels: frozenset[str]
    # True where the provider's acceptance is the last and best news it will ever give
    accepted_is_delivered: bool

    def send(self, step: Step, callback: Callback) -> str:
        """Send one step; return the provider's message id or raise a ProviderError."""
        ...

    def parse_dlr(self, body: Any) -> list[DeliveryReport]:
        """Read one callback's reports (decoded JSON; some providers batch them); raise
        InvalidDlr if it holds none we can read."""
        ...

    def for_caller(self, body: Any, post_back_data: str | None) -> Any:
        """The report as the caller would have had it from the provider: OTPflow's callback
        token replaced by the caller's own ``post_back_data``."""
        ...


def report_status(statuses: Mapping[str, DlrStatus], raw: str, what: str) -> DlrStatus:
    """A report's status word as OTPflow counts it (any case, padded or not); a word not in
    ``statuses`` is InvalidDlr, naming it masked and cut short (``what``: whose report)."""
    status = statuses.get(raw.strip().lower())
    if status is None:
        raise InvalidDlr(f"unknown {what} status {mask(raw)[:40]!r}")
    return status


def send_json(
    client: httpx.Client,
    provider: str,
    url: str,
    body: dict[str, Any],
    headers: dict[str, str],
    message_id: Callable[[dict[str, Any]], object],
) -> str:
    """POST one message and return the provider's id for it.

    ``message_id`` reads the id out of the provider's JSON object reply, or raises
    :class:`ProviderRejected` / :class:`ProviderAuthError` for a refusal the provider states in
    a 2xx. A 2xx we cannot read (not JSON, not an object, not the documented shape, no id) is
    :class:`ProviderBadReply`, an ambiguous send: the provider answered success at the HTTP
    level and may have the message, so it must never go to another provider of the channel.
    """
    reply = _json_object(provider, post_json(client, provider, url, body, headers))
    try:
        found = message_id(reply)
    except (LookupError, TypeError, AttributeError, ValueError) as exc:
        # the reader met a shape it does not know: as unreadable as no JSON at all
        raise ProviderBadReply(provider, "reply is not in the documented shape") from exc
    if isinstance(found, bool) or not isinstance(found, str | int) or found == "":
        raise ProviderBadReply(provider, "accepted without a message id")
    return str(found)


def _json_object(provider: str, response: httpx.Response) -> dict[str, Any]:
    media_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != "application/json" and not media_type.endswith("+json"):
        raise ProviderBadReply(provider, f"reply is not JSON ({media_type[:60] or 'no type'})")
    try:
        reply = response.json()
    except ValueError as exc:  # invalid JSON, or not UTF-8
        raise ProviderBadReply(provider, "reply is not valid JSON") from exc
    if not isinstance(reply, dict):
        raise ProviderBadReply(provider, "reply is not a JSON object")
    return reply


def post_json(
    client: httpx.Client, provider: str, url: str, body: dict[str, Any], headers: dict[str, str]
) -> httpx.Response:
    """POST and classify the failure modes shared by every HTTP provider: a response returned
    is a 2xx (or another status below 400), its body not yet read."""
    try:
        response = client.post(url, json=body, headers=headers)
    except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
        raise ProviderUnavailable(provider, f"cannot connect: {type(exc).__name__}") from exc
    except httpx.TransportError as exc:
        # the request may have reached the provider: never send it again
        raise AmbiguousSend(provider, f"no reply: {type(exc).__name__}") from exc
    code = response.status_code
    if code == 429:
        raise ProviderRateLimited(provider, "rate limited (429)", _retry_after(response))
    if code >= 500:
        raise ProviderUnavailable(provider, f"provider error ({code})")
    if code in (401, 403):
        raise ProviderAuthError(provider, f"authentication refused ({code}): {_reason(response)}")
    if code >= 400:
        raise ProviderRejected(provider, f"rejected ({code}): {_reason(response)}")
    return response


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after", "")
    try:
        return max(float(value), 0.0)
    except ValueError:
        return None


def _reason(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return mask(response.text[:200])
    if isinstance(body, dict):
        return mask(str(body.get("message") or body.get("error") or "")[:200])
    return ""
