"""The switch webhook: tell the caller that its flow moved to the next channel (SPEC §5).

Body: ``event, request_id, callbackData, from{index, channel, provider, status, reason},
to{index, channel}, timestamp``; header ``X-OTPflow-Signature: t=<unix>,v1=<hex>``. Delivery is
retried with jittered exponential backoff; every outcome lands on the flow's timeline.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import random
import socket
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import httpx

from otpflow.worker.signing import webhook_signature

if TYPE_CHECKING:
    from otpflow.worker.runtime import Enqueue, Runtime

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
    rt: Runtime, enqueue: Enqueue, flow_id: str, from_step: int, to_step: int, attempt: int
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
    body = json.dumps(
        switch_body(flow_id, request.callback_data, switch, view.steps[from_step].provider),
        separators=(",", ":"),
    ).encode()
    event_id = f"{flow_id}:switch:{from_step}"
    record = {"type": "webhook", "event": "channel_switch", "step": from_step, "attempt": attempt}
    try:
        check_destination(request.webhook_url, rt.settings.allow_private_webhooks)
        timestamp = int(time.time())
        response = rt.http.post(
            request.webhook_url,
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
        return _retry_or_give_up(
            rt, enqueue, flow_id, from_step, to_step, attempt, record, type(exc).__name__
        )
    if response.is_success:
        rt.store.add_event(flow_id, record | {"result": "delivered", "code": response.status_code})
        return "delivered"
    return _retry_or_give_up(
        rt, enqueue, flow_id, from_step, to_step, attempt, record, f"HTTP {response.status_code}"
    )


def _retry_or_give_up(
    rt: Runtime,
    enqueue: Enqueue,
    flow_id: str,
    from_step: int,
    to_step: int,
    attempt: int,
    record: dict[str, Any],
    reason: str,
) -> str:
    if attempt >= rt.settings.webhook_max_attempts:
        rt.store.add_event(flow_id, record | {"result": "gave_up", "reason": reason})
        return "gave_up"
    delay = min(60.0, 2.0**attempt) * random.uniform(0.5, 1.0)
    rt.store.add_event(flow_id, record | {"result": "retrying", "reason": reason})
    enqueue.notify_switch(flow_id, from_step, to_step, attempt + 1, countdown=delay)
    return "retrying"
