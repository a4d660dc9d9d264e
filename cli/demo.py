"""``otpflow demo``: the whole system on this machine, one flow, its timeline as it happens.

It uses the Redis at OTPFLOW_REDIS_URL when one answers there, in a database of its own that
it empties when it ends, otherwise an embedded Redis-protocol server; it starts the simulator,
the API and a worker, sends a flow whose SMS fails and whose WhatsApp is delivered, and stops
everything it started before it returns, also on SIGTERM or SIGHUP.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import FrameType
from typing import Any
from urllib.parse import urlsplit

import httpx
import redis
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.text import Text

from otpflow.cli.stack import EmbeddedRedis, Stack, free_port, redis_answers
from otpflow.cli.timeline import event_line, steps_table, summary
from otpflow.config.settings import Settings
from otpflow.flow import keys
from otpflow.flow.views import FlowView

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


# Databases a demo may take on the user's Redis: only an empty one, or one a dead demo left.
DEMO_DATABASES = range(1, 5)
LEASE_SECONDS = 15


class DemoDatabase:
    """A database of its own on the user's Redis for one demo run, so that demos never meet
    each other's limits and nothing of theirs stays: taken only when it is empty (or holds
    what a killed demo left), leased while the demo runs, emptied when it ends."""

    def __init__(self, url: str, number: int, client: redis.Redis) -> None:
        self.url, self.number, self._client = url, number, client
        self._stop = threading.Event()
        self._keeper = threading.Thread(target=self._keep_lease, daemon=True)
        self._keeper.start()

    @classmethod
    def take(cls, base_url: str) -> DemoDatabase | None:
        """The first free demo database on the server of ``base_url``, or None."""
        parts = urlsplit(base_url)
        if parts.scheme not in ("redis", "rediss"):
            return None
        for number in DEMO_DATABASES:
            url = parts._replace(path=f"/{number}", query="").geturl()
            client = redis.Redis.from_url(url, socket_timeout=2)
            try:
                if cls._claim(client):
                    return cls(url, number, client)
            except redis.ResponseError:  # the server has fewer databases
                pass
            client.close()
        return None

    @staticmethod
    def _claim(client: redis.Redis) -> bool:
        token = str(os.getpid())
        if client.dbsize() == 0:
            if not client.set(keys.demo_lease(), token, nx=True, ex=LEASE_SECONDS):
                return False
            client.set(keys.demo_database(), 1)
            return True
        if client.exists(keys.demo_database()) and client.set(
            keys.demo_lease(), token, nx=True, ex=LEASE_SECONDS
        ):
            # what a killed demo left: empty it, keeping this run's lease, in one transaction
            pipe = client.pipeline(transaction=True)
            pipe.flushdb()
            pipe.set(keys.demo_lease(), token, ex=LEASE_SECONDS)
            pipe.set(keys.demo_database(), 1)
            pipe.execute()
            return True
        return False

    def _keep_lease(self) -> None:
        while not self._stop.wait(LEASE_SECONDS / 3):
            with contextlib.suppress(redis.RedisError):
                self._client.expire(keys.demo_lease(), LEASE_SECONDS)

    def release(self) -> None:
        """Empty the database (the flow, its limits, metrics, queues) and give it back."""
        self._stop.set()
        self._keeper.join()
        with contextlib.suppress(redis.RedisError):
            self._client.flushdb()
        self._client.close()


ENDING_SIGNALS = (signal.SIGTERM, signal.SIGHUP)


def _end(signum: int, _: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def _hold_signals() -> None:
    """While the demo cleans up, another signal (or Ctrl-C) must not cut the cleanup short."""
    for sig in (*ENDING_SIGNALS, signal.SIGINT):
        signal.signal(sig, signal.SIG_IGN)


def _end_strays() -> None:
    """End any process this one started that the stack's books missed (one spawned in the
    instant a signal arrived): each runs in its own process group."""
    me = str(os.getpid())
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            ppid = stat.read_text().rsplit(")", 1)[1].split()[1]
            if ppid == me:
                os.killpg(int(stat.parent.name), signal.SIGTERM)


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
    """Run the demo; SIGTERM and SIGHUP (a closed terminal) end it as Ctrl-C does, through
    its cleanup, so no process it started outlives it."""
    previous = {sig: signal.getsignal(sig) for sig in (*ENDING_SIGNALS, signal.SIGINT)}
    for sig in ENDING_SIGNALS:
        signal.signal(sig, _end)
    try:
        return _run(console, settings, timeout)
    finally:
        _end_strays()
        for sig, handler in previous.items():
            if handler is not None:
                signal.signal(sig, handler)


def _run(console: Console, settings: Settings, timeout: float) -> int:
    embedded: EmbeddedRedis | None = None
    database: DemoDatabase | None = None
    sink: _WebhookSink | None = None
    stack: Stack | None = None
    try:
        if redis_answers(settings.redis_url):
            database = DemoDatabase.take(settings.redis_url)
        if database is not None:
            redis_url = database.url
            console.print(
                Text.assemble(
                    "Using Redis at ",
                    (settings.redis_url, "bold"),
                    f" (database {database.number}, emptied at the end)",
                )
            )
        else:
            embedded = EmbeddedRedis()
            redis_url = embedded.url
            why = "no free demo database (1-4)" if redis_answers(settings.redis_url) else "no Redis"
            console.print(f"{why} at {settings.redis_url}: started an embedded one at {redis_url}")
        sink = _WebhookSink()
        stack = Stack(redis_url=redis_url, api_keys="demo:demo-key")
        console.print("Starting simulator, API and worker ...")
        with console.status("waiting for the simulator, the API and a worker to answer"):
            stack.start(workers=1, concurrency=8)
        httpx.post(f"{stack.sim_url}/_sim/rules", json={"rules": DEMO_RULES}).raise_for_status()
        flow = DEMO_FLOW | {"webhookurl": f"http://127.0.0.1:{sink.port}/otp-switch"}
        headers = {"x-api-key": "demo-key", "x-workspace-id": "demo"}
        reply = httpx.post(f"{stack.api_url}/v1/otpflow", json=flow, headers=headers)
        if reply.status_code != 200:
            console.print(
                f"[red]The API refused the demo flow ({reply.status_code}):[/] {reply.text}"
            )
            return 1
        request_id = reply.json()["request_id"]
        console.print(
            Text.assemble("Sent flow ", (request_id, "bold"), ": SMS (will fail), then WhatsApp")
        )
        console.print()
        return _follow(console, stack, request_id, sink, timeout)
    finally:
        _hold_signals()
        if stack is not None:
            stack.stop()
        if sink is not None:
            sink.stop()
        if embedded is not None:
            embedded.stop()
        if database is not None:
            database.release()
        with contextlib.suppress(OSError):  # the terminal may be gone (SIGHUP)
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
