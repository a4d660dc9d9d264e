"""``otpflow demo``: the whole system on this machine, one flow, its timeline as it happens.

It uses the Redis at OTPFLOW_REDIS_URL when one answers there, otherwise an embedded
Redis-protocol server; it starts the simulator, the API and a worker, sends a flow whose SMS
fails and whose WhatsApp is delivered, and stops everything it started before it returns.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.text import Text

from otpflow.config.settings import Settings
from otpflow.flow.store import FlowView
from otpflow.worker.stack import EmbeddedRedis, Stack, free_port, redis_answers
from otpflow.worker.timeline import event_line, steps_table, summary

DEMO_RECIPIENT = "919876543210"

DEMO_FLOW: dict[str, Any] = {
    "messages": [
        {
            "channel": "sms",
            "timeout": 10,
            "messageType": "",
            "data": {
                "recipient": DEMO_RECIPIENT,
                "message": "Your code is 4821",
                "sender_id": "ACME",
                "route": "otp",
            },
        },
        {
            "channel": "whatsapp",
            "timeout": 30,
            "messageType": "template",
            "data": {
                "recipient": DEMO_RECIPIENT,
                "phone_id": "demo-phone",
                "template_name": "otp_code",
                "language": "en",
                "variables": {"1": "4821"},
            },
        },
    ],
    "callbackData": "demo-signup-42",
}

DEMO_RULES = [
    {"channel": "sms", "action": "fail", "delay_ms": 1500, "status": "undelivered"},
    {"channel": "whatsapp", "action": "deliver", "delay_ms": 1200},
]


class _WebhookSink:
    """Receives the switch webhook so the demo can show it arriving."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                sink.received.append(json.loads(body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *_: Any) -> None:
                pass

        self.port = free_port()
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def run_demo(console: Console, settings: Settings, timeout: float = 60.0) -> int:
    embedded: EmbeddedRedis | None = None
    redis_url = settings.redis_url
    if redis_answers(redis_url):
        console.print(Text.assemble("Using Redis at ", (redis_url, "bold")))
    else:
        embedded = EmbeddedRedis()
        redis_url = embedded.url
        console.print(f"No Redis at {settings.redis_url}: started an embedded one at {redis_url}")
    sink = _WebhookSink()
    stack = Stack(redis_url=redis_url, api_keys="demo:demo-key")
    try:
        console.print("Starting simulator, API and worker ...")
        with console.status("waiting for the simulator, the API and a worker to answer"):
            stack.start(workers=1, concurrency=8)
        httpx.post(f"{stack.sim_url}/_sim/rules", json={"rules": DEMO_RULES}).raise_for_status()
        flow = DEMO_FLOW | {"webhookurl": f"http://127.0.0.1:{sink.port}/otp-switch"}
        headers = {"x-api-key": "demo-key", "x-workspace-id": "demo"}
        reply = httpx.post(f"{stack.api_url}/v1/otpflow", json=flow, headers=headers)
        reply.raise_for_status()
        request_id = reply.json()["request_id"]
        console.print(
            Text.assemble("Sent flow ", (request_id, "bold"), ": SMS (will fail), then WhatsApp")
        )
        console.print()
        return _follow(console, stack, request_id, sink, timeout)
    finally:
        stack.stop()
        sink.stop()
        if embedded is not None:
            embedded.stop()
        console.print("Stopped every process the demo started.")


def _live_view(view: FlowView) -> RenderableType:
    return Group(Text(), summary(view), steps_table(view))


def _follow(
    console: Console, stack: Stack, request_id: str, sink: _WebhookSink, timeout: float
) -> int:
    """Print each event as it arrives, with the steps table redrawn live below them, until
    the flow has ended and its switch webhook has been delivered."""
    from otpflow.producers import OtpflowClient

    shown = 0
    ended: FlowView | None = None
    deadline = time.monotonic() + timeout
    client = OtpflowClient(Settings(redis_url=stack.redis_url))
    try:
        with Live(console=console, auto_refresh=False) as live:
            while ended is None and time.monotonic() < deadline:
                view = client.status(request_id)
                assert view is not None
                for event in view.events[shown:]:
                    live.console.print(event_line(event, view.created_at))
                shown = len(view.events)
                live.update(_live_view(view), refresh=True)
                if view.terminal and any(e["type"] == "webhook" for e in view.events):
                    ended = view
                else:
                    time.sleep(0.1)
    finally:
        client.close()
    if ended is None:
        console.print(f"[red]The flow did not finish within {timeout:.0f} s.[/]")
        return 1
    console.print()
    for body in sink.received:
        console.print(
            f"Webhook received: {body['event']} "
            f"{body['from']['channel']} -> {body['to']['channel']}, "
            f"callbackData={body['callbackData']!r}",
            highlight=False,
        )
    return 0 if ended.status == "delivered" else 1
