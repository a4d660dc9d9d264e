"""Handles on the real system for integration and fault tests: Redis, the API under uvicorn,
the simulator, beat and Celery worker processes, all over loopback sockets.

State lives in one Redis database and the broker in another (or RabbitMQ), so a test can watch
everything that passes through the broker. Each test uses its own recipient numbers, so tests
share the running processes without seeing each other's messages.
"""

from __future__ import annotations

import json
import os
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from otpflow.flow.store import FlowStore, FlowView
from otpflow.worker.stack import Stack, free_port

REDIS_HOST = os.environ.get("OTPFLOW_TEST_REDIS", "redis://127.0.0.1:6379")
RABBITMQ_URL = os.environ.get("OTPFLOW_TEST_RABBITMQ", "amqp://guest:guest@127.0.0.1:5672//")
STATE_URL = f"{REDIS_HOST}/13"
BROKER_URL = f"{REDIS_HOST}/14"
API_KEY, WORKSPACE = "test-key", "test-ws"
HEADERS = {"x-api-key": API_KEY, "x-workspace-id": WORKSPACE}


@dataclass
class Webhooks:
    """A caller's webhook endpoint: records every POST with its headers and raw body."""

    port: int = field(default_factory=free_port)
    received: list[dict[str, Any]] = field(default_factory=list)

    def start(self) -> None:
        hooks = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("content-length", 0)))
                hooks.received.append(
                    {
                        "path": self.path,
                        "headers": dict(self.headers),
                        "raw": raw,
                        "body": json.loads(raw),
                    }
                )
                self.send_response(200)
                self.end_headers()

            def log_message(self, *_: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def for_path(self, path: str) -> list[dict[str, Any]]:
        return [hook for hook in self.received if hook["path"] == path]


class System:
    """Handles for a test: the stack, the simulator, the store and a webhook receiver."""

    def __init__(self, stack: Stack, webhooks: Webhooks, state_url: str = STATE_URL) -> None:
        self.stack = stack
        self.webhooks = webhooks
        self.http = httpx.Client(timeout=10)
        self.state = redis.Redis.from_url(state_url)
        self.store = FlowStore(self.state, ttl_seconds=3600)

    # -- simulator -------------------------------------------------------------------------
    def rules(self, *rules: dict[str, Any]) -> None:
        self.http.post(
            f"{self.stack.sim_url}/_sim/rules", json={"rules": list(rules)}
        ).raise_for_status()

    def sim_requests(self, **filters: str) -> list[dict[str, Any]]:
        reply = self.http.get(f"{self.stack.sim_url}/_sim/requests", params=filters)
        return reply.json()["requests"]

    def sim_postbacks(self) -> list[dict[str, Any]]:
        return self.http.get(f"{self.stack.sim_url}/_sim/postbacks").json()["postbacks"]

    def sim_dlr(self, request_id: str, status: str) -> httpx.Response:
        return self.http.post(
            f"{self.stack.sim_url}/_sim/dlr",
            json={"request_id": request_id, "status": status, "delay_ms": 0},
        )

    # -- API -------------------------------------------------------------------------------
    def post_flow(self, body: Any) -> httpx.Response:
        return self.http.post(f"{self.stack.api_url}/v1/otpflow", json=body, headers=HEADERS)

    def start(self, body: dict[str, Any]) -> str:
        reply = self.post_flow(body)
        assert reply.status_code == 200, reply.text
        return str(reply.json()["request_id"])

    def flow(self, request_id: str) -> FlowView:
        view = self.store.get(request_id)
        assert view is not None
        return view

    def wait(self, condition: Callable[[], Any], timeout: float = 20.0, what: str = "") -> Any:
        """Poll until condition() is truthy; fail with a clear message at the deadline."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            result = condition()
            if result:
                return result
            time.sleep(0.05)
        pytest.fail(f"timed out after {timeout} s waiting for {what or condition}")

    def wait_terminal(self, request_id: str, timeout: float = 20.0) -> FlowView:
        return self.wait(
            lambda: (v := self.flow(request_id)).terminal and v,
            timeout,
            f"flow {request_id} to end",
        )


def recipient() -> str:
    """A fresh number per flow, so the simulator's log can be read per test."""
    return "91" + str(random.randint(7_000_000_000, 9_999_999_999))


def sms_step(to: str, timeout: int = 30, text: str = "Your code is 4821") -> dict[str, Any]:
    return {
        "channel": "sms",
        "timeout": timeout,
        "messageType": "",
        "data": {"recipient": to, "message": text, "sender_id": "ACME", "route": "otp"},
    }


def whatsapp_step(
    to: str, timeout: int = 30, text: str = "Your WhatsApp code is 4821"
) -> dict[str, Any]:
    return {
        "channel": "whatsapp",
        "timeout": timeout,
        "messageType": "custom",
        "data": {"recipient": to, "phone_id": "phone-1", "text": text},
    }


def clean_broker(broker_url: str) -> None:
    """Start from empty queues: flush a Redis broker database, purge RabbitMQ's queues."""
    if broker_url.startswith("redis"):
        redis.Redis.from_url(broker_url).flushdb()
        return
    from otpflow.config.celery import make_celery
    from otpflow.config.settings import Settings

    app = make_celery(Settings(broker_url=broker_url))
    with app.connection_for_write() as connection:
        channel = connection.default_channel
        for queue in app.amqp.queues.values():
            queue.bind(channel).declare()
            queue.bind(channel).purge()
    app.close()


def start_system(
    log_dir: Path,
    state_url: str = STATE_URL,
    broker_url: str = BROKER_URL,
    workers: int = 2,
    env: dict[str, str] | None = None,
    stack_redis_url: str | None = None,
) -> System:
    """Flush the test databases, start the stack and a webhook receiver."""
    client = redis.Redis.from_url(state_url)
    try:
        client.flushdb()
    except redis.ConnectionError:
        pytest.fail(f"no Redis at {state_url}: start one (see README)")
    client.close()
    clean_broker(broker_url)
    webhooks = Webhooks()
    webhooks.start()
    stack = Stack(
        redis_url=stack_redis_url or state_url,
        broker_url=broker_url,
        api_keys=f"{WORKSPACE}:{API_KEY}",
        log_dir=log_dir,
        extra_env={"OTPFLOW_LOG_LEVEL": "INFO", **(env or {})},
    )
    try:
        stack.start(workers=workers, concurrency=8)
    except BaseException:
        stack.stop()
        raise
    return System(stack, webhooks, state_url)


def stop_system(system: System) -> None:
    system.stack.stop()
    system.webhooks.server.shutdown()
    system.http.close()
