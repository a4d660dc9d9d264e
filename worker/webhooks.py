"""Calls to the caller's URLs: the switch webhook (SPEC §5) and the relay of delivery reports.

Switch body: ``event, request_id, callbackData, from{index, channel, provider, status, reason},
to{index, channel}, timestamp``. A relayed report keeps its provider's own format, with the
caller's ``post_back_data``. Both are signed per Standard Webhooks (``webhook-id``,
``webhook-timestamp``, ``webhook-signature``) with the flow's workspace's webhook secret, and
carry ``X-OTPflow-Signature`` too; delivery is retried with jittered exponential backoff, and
every outcome lands on the flow's timeline.

The caller chooses these URLs, so the client that calls them is built for it
(:func:`webhook_client`): its connections go to exactly the address that was checked against
:mod:`otpflow.flow.destinations` (no second DNS answer), and each call has a total deadline
(:mod:`otpflow.worker.http`), however slowly the receiver trickles its reply; the reply's body
is never read.
"""

from __future__ import annotations

import json
import logging
import random
import socket
import ssl
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import httpcore
import httpx

from otpflow.flow.destinations import DestinationRefused, is_forbidden, literal_address
from otpflow.flow.signing import webhook_headers, webhook_secret
from otpflow.flow.states import Kind
from otpflow.flow.times import iso
from otpflow.worker.http import DeadlineBackend, deadline, http_client

if TYPE_CHECKING:
    from otpflow.flow.contract import Tasks
    from otpflow.worker.runtime import Runtime

logger = logging.getLogger("otpflow.webhooks")


class WebhookRefused(ValueError):
    """The URL may not be called (scheme, or a private address without the setting)."""


def check_destination(url: str) -> None:
    """Refuse non-http(s) URLs; the addresses are checked when the connection is made."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise WebhookRefused("webhook URL must be http(s) with a host")


def checked_addresses(host: str, port: int, allow_private: bool) -> list[str]:
    """Resolve ``host`` once; every address it has must be allowed (a host with one private
    address among public ones is refused: which one a client picks is not ours to guess)."""
    literal = literal_address(host)
    if literal is not None:
        addresses = [str(literal)]
    else:
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (socket.gaierror, UnicodeError) as exc:
            raise DestinationRefused("webhook host does not resolve") from exc
        addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    if not allow_private:
        for address in addresses:
            ip = literal_address(address.partition("%")[0])  # fe80::1%eth0 has a zone
            if ip is None or is_forbidden(ip):
                raise DestinationRefused(
                    "webhook host resolves to a private address "
                    "(set OTPFLOW_ALLOW_PRIVATE_WEBHOOKS)"
                )
    return addresses


class PinnedBackend(DeadlineBackend):
    """Connects to an address checked by :func:`checked_addresses`, never to a second
    resolution of the name; TLS and the Host header still use the URL's host name."""

    def __init__(self, allow_private: bool) -> None:
        self._allow_private = allow_private

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        last: Exception | None = None
        for address in checked_addresses(host, port, self._allow_private):
            try:  # the deadline's stream, connected to the checked address
                return super().connect_tcp(address, port, timeout, local_address, socket_options)
            except httpcore.ConnectError as exc:
                last = exc
        raise last or httpcore.ConnectError(f"no address of {host} answered")


def webhook_client(
    allow_private: bool, timeout: float, ssl_context: ssl.SSLContext | None = None
) -> httpx.Client:
    """The HTTP client for callers' URLs: pinned to checked addresses, no redirects, the
    certificates checked against the system's CAs (or ``ssl_context``'s)."""
    return http_client(httpx.Timeout(timeout), PinnedBackend(allow_private), ssl_context)


def switch_body(
    flow_id: str, callback_data: str | None, switch: dict[str, Any], provider: str | None
) -> dict[str, Any]:
    return {
        "event": "channel_switch",
        "request_id": flow_id,
        "callbackData": callback_data,
        "from": {
            "index": switch["step"],
            "channel": switch.get("channel"),
            "provider": provider,
            "status": switch.get("status"),
            "reason": switch.get("reason"),
        },
        "to": {"index": switch["to_step"], "channel": switch.get("to_channel")},
        "timestamp": iso(switch["ts"]),
    }


def notify_switch(
    rt: Runtime, enqueue: Tasks, flow_id: str, from_step: int, to_step: int, attempt: int
) -> str:
    request = rt.store.request_of(flow_id)
    view = rt.store.get(flow_id)
    if request is None or view is None or not request.webhook_url:
        return "no_webhook"
    switch = next(
        (e for e in view.events if e["type"] == "channel_switch" and e["step"] == from_step), None
    )
    if switch is None:
        return "no_switch"
    body = switch_body(flow_id, request.callback_data, switch, view.steps[from_step].provider)
    return deliver(
        rt,
        flow_id,
        request.webhook_url,
        body,
        workspace=view.workspace,
        event_id=f"{flow_id}:switch:{from_step}",
        record={"type": "webhook", "event": "channel_switch", "step": from_step},
        attempt=attempt,
        retry=lambda delay: enqueue.notify_switch(
            flow_id, from_step, to_step, attempt + 1, delay=delay
        ),
    )


def notify_terminal(rt: Runtime, enqueue: Tasks, flow_id: str, attempt: int) -> str:
    """Tell a caller who asked for ``terminal`` events how its flow ended."""
    request = rt.store.request_of(flow_id)
    view = rt.store.get(flow_id)
    if request is None or view is None or not request.webhook_url or not view.terminal:
        return "no_webhook"
    if "terminal" not in request.webhook_events:
        return "not_asked"
    body = {
        "event": "terminal",
        "request_id": flow_id,
        "callbackData": request.callback_data,
        "status": view.status,
        "reason": view.reason,
        "delivered_step": view.delivered_step,
        "timestamp": iso(view.ended_at or view.updated_at),
    }
    return deliver(
        rt,
        flow_id,
        request.webhook_url,
        body,
        workspace=view.workspace,
        event_id=f"{flow_id}:terminal",
        record={"type": "webhook", "event": "terminal"},
        attempt=attempt,
        retry=lambda delay: enqueue.notify_terminal(flow_id, attempt + 1, delay=delay),
    )


def relay_dlr(
    rt: Runtime, enqueue: Tasks, flow_id: str, step: int, index: int, attempt: int
) -> str:
    """Pass one delivery report on to the caller's own ``post_back_url``, in the provider's
    format, with the caller's ``post_back_data`` in place of OTPflow's callback token."""
    request = rt.store.request_of(flow_id)
    report = rt.store.report(flow_id, index)
    view = rt.store.get(flow_id)
    if request is None or report is None or view is None:
        return Kind.MISSING
    data = request.steps[step].data
    url = getattr(data, "post_back_url", None)
    provider = rt.providers.get(report["provider"])
    if not url or provider is None:
        return "no_relay"
    body = provider.for_caller(report["body"], getattr(data, "post_back_data", None))
    return deliver(
        rt,
        flow_id,
        url,
        body,
        workspace=view.workspace,
        event_id=f"{flow_id}:dlr:{step}:{index}",
        record={"type": "relay", "step": step, "status": report["status"]},
        attempt=attempt,
        retry=lambda delay: enqueue.relay_dlr(flow_id, step, index, attempt + 1, delay=delay),
    )


def deliver(
    rt: Runtime,
    flow_id: str,
    url: str,
    payload: Any,
    event_id: str,
    record: dict[str, Any],
    attempt: int,
    retry: Callable[[float], None],
    *,
    workspace: str,
) -> str:
    """POST one event, signed with ``workspace``'s webhook secret, to a caller's URL; retry
    with jittered exponential backoff up to ``OTPFLOW_WEBHOOK_MAX_ATTEMPTS``, and put every
    outcome on the flow's timeline."""
    body = json.dumps(payload, separators=(",", ":")).encode()
    record = record | {"attempt": attempt}
    headers = {"Content-Type": "application/json"} | webhook_headers(
        webhook_secret(rt.secret, workspace), event_id, int(time.time()), body
    )
    result = _post(rt, flow_id, url, body, headers, record, attempt, retry)
    event = record.get("event", record["type"])
    rt.store.metrics.incr("webhook_deliveries", event=event, result=result)
    return result


def _post(
    rt: Runtime,
    flow_id: str,
    url: str,
    body: bytes,
    headers: dict[str, str],
    record: dict[str, Any],
    attempt: int,
    retry: Callable[[float], None],
) -> str:
    try:
        check_destination(url)
        # the whole call, connect to status line, within one webhook timeout; only the status
        # is read, the body is left unread and the connection closed with the response
        with (
            deadline(rt.settings.webhook_timeout_seconds),
            rt.webhook_http.stream("POST", url, content=body, headers=headers) as response,
        ):
            status = response.status_code
    except (WebhookRefused, DestinationRefused) as exc:
        rt.store.add_event(flow_id, record | {"result": "refused", "reason": str(exc)})
        return "refused"
    except httpx.TimeoutException:
        reason = "timeout"
    except httpx.HTTPError as exc:
        reason = type(exc).__name__
    else:
        if 200 <= status < 300:
            rt.store.add_event(flow_id, record | {"result": "delivered", "code": status})
            return "delivered"
        reason = f"HTTP {status}"
    if attempt >= rt.settings.webhook_max_attempts:
        rt.store.add_event(flow_id, record | {"result": "gave_up", "reason": reason})
        return "gave_up"
    rt.store.add_event(flow_id, record | {"result": "retrying", "reason": reason})
    retry(min(60.0, 2.0**attempt) * random.uniform(0.5, 1.0))
    return "retrying"
