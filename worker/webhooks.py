"""Calls to the caller's URLs: the switch webhook (SPEC §5) and the relay of delivery reports.

Switch body: ``event, request_id, callbackData, from{index, channel, provider, status, reason},
to{index, channel}, timestamp``. A relayed report keeps its provider's own format, with the
caller's ``post_back_data``. Both carry ``X-OTPflow-Signature: t=<unix>,v1=<hex>`` and an
event id; delivery is retried with jittered exponential backoff, and every outcome lands on the
flow's timeline.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import random
import socket
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import httpx

from otpflow.worker.signing import webhook_signature

if TYPE_CHECKING:
    from otpflow.flow.contract import Tasks
    from otpflow.worker.runtime import Runtime

logger = logging.getLogger("otpflow.webhooks")

SIGNATURE_HEADER = "X-OTPflow-Signature"
EVENT_ID_HEADER = "X-OTPflow-Event-Id"


class WebhookRefused(ValueError):
    """The URL may not be called (scheme, or a private address without the setting)."""


def check_destination(url: str, allow_private: bool) -> None:
    """Refuse non-http(s) URLs and, unless allowed, hosts that resolve to private addresses."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise WebhookRefused("webhook URL must be http(s) with a host")
    if allow_private:
        return
    try:
        infos = socket.getaddrinfo(parts.hostname, parts.port or 443, proto=socket.IPPROTO_TCP)
    except socket.gaierror as exc:
        raise WebhookRefused("webhook host does not resolve") from exc
    for info in infos:
        address = ipaddress.ip_address(info[4][0])
        if not address.is_global or address.is_multicast:
            raise WebhookRefused(
                "webhook host resolves to a private address (set OTPFLOW_ALLOW_PRIVATE_WEBHOOKS)"
            )


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


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
    if request is None or report is None:
        return "missing"
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
) -> str:
    """POST one signed event to a caller's URL; retry with jittered exponential backoff up to
    ``OTPFLOW_WEBHOOK_MAX_ATTEMPTS``, and put every outcome on the flow's timeline."""
    body = json.dumps(payload, separators=(",", ":")).encode()
    record = record | {"attempt": attempt}
    result = _post(rt, flow_id, url, body, event_id, record, attempt, retry)
    rt.metrics.incr("webhook_deliveries", event=record.get("event", record["type"]), result=result)
    return result


def _post(
    rt: Runtime,
    flow_id: str,
    url: str,
    body: bytes,
    event_id: str,
    record: dict[str, Any],
    attempt: int,
    retry: Callable[[float], None],
) -> str:
    try:
        check_destination(url, rt.settings.allow_private_webhooks)
        timestamp = int(time.time())
        response = rt.http.post(
            url,
            content=body,
            headers={
                "Content-Type": "application/json",
                SIGNATURE_HEADER: webhook_signature(rt.secret, timestamp, body),
                EVENT_ID_HEADER: event_id,
            },
            timeout=rt.settings.webhook_timeout_seconds,
        )
    except WebhookRefused as exc:
        rt.store.add_event(flow_id, record | {"result": "refused", "reason": str(exc)})
        return "refused"
    except httpx.HTTPError as exc:
        reason = type(exc).__name__
    else:
        if response.is_success:
            rt.store.add_event(
                flow_id, record | {"result": "delivered", "code": response.status_code}
            )
            return "delivered"
        reason = f"HTTP {response.status_code}"
    if attempt >= rt.settings.webhook_max_attempts:
        rt.store.add_event(flow_id, record | {"result": "gave_up", "reason": reason})
        return "gave_up"
    rt.store.add_event(flow_id, record | {"result": "retrying", "reason": reason})
    retry(min(60.0, 2.0**attempt) * random.uniform(0.5, 1.0))
    return "retrying"
