"""Handles on the real system for integration and fault tests: Redis, the API under uvicorn,
the simulator and Celery worker processes, all over loopback sockets.

State lives in one Redis database and the broker in another (or RabbitMQ), so a test can watch
everything that passes through the broker. Each test uses its own recipient numbers, so tests
share the running processes without seeing each other's messages.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import random
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import phonenumbers
import pytest
import redis
import uvicorn
from prometheus_client.parser import text_string_to_metric_families
from pydantic import BaseModel

from otpflow.cli.errors import masked
from otpflow.cli.stack import Stack
from otpflow.config.settings import Settings
from otpflow.flow.keyring import Keyring
from otpflow.flow.store import FlowStore
from otpflow.flow.views import FlowView
from otpflow.producers import OtpflowClient

REDIS_HOST = os.environ.get("OTPFLOW_TEST_REDIS", "redis://127.0.0.1:6379")
RABBITMQ_URL = os.environ.get("OTPFLOW_TEST_RABBITMQ", "amqp://guest:guest@127.0.0.1:5672//")
STATE_URL = f"{REDIS_HOST}/13"
BROKER_URL = f"{REDIS_HOST}/14"
# every database of REDIS_HOST the suite empties (never 0; 9 is the demo tests'): keep in step
# with the README's "Tests" and the state/broker URLs of the conftests and test modules
EMPTIED_DATABASES = (1, 2, 3, 4, 5, 6, 7, 8, 10, 11, 12, 13, 14, 15)
API_KEY, WORKSPACE = "test-key", "test-ws"
HEADERS = {"x-api-key": API_KEY, "x-workspace-id": WORKSPACE}
OTHER_HEADERS = {"x-api-key": "other-key", "x-workspace-id": "other-ws"}


class System:
    """Handles for a test: the stack, the simulator, the store and a webhook receiver."""

    def __init__(self, stack: Stack, webhooks: HttpRecorder, state_url: str = STATE_URL) -> None:
        self.stack = stack
        self.webhooks = webhooks
        self.http = httpx.Client(timeout=10)
        self.state = redis.Redis.from_url(state_url)
        self.store = FlowStore(self.state, Keyring.from_secret(stack.secret), ttl_seconds=3600)
        self.proxy: Any = None  # the TcpProxy between the processes and Redis, if any
        self._client: OtpflowClient | None = None

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

    def client(self) -> OtpflowClient:
        """A producer on the same Redis and broker as the processes."""
        if self._client is None:
            self._client = OtpflowClient(self.stack.settings())
        return self._client

    def start(self, body: dict[str, Any]) -> str:
        reply = self.post_flow(body)
        assert reply.status_code == 200, reply.text
        return str(reply.json()["request_id"])

    def flow(self, request_id: str) -> FlowView:
        view = self.store.get(request_id)
        assert view is not None
        return view

    def wait(self, condition: Callable[[], Any], timeout: float = 20.0, what: str = "") -> Any:
        return wait_for(condition, timeout, what)

    def wait_terminal(self, request_id: str, timeout: float = 20.0) -> FlowView:
        return self.wait(
            lambda: (v := self.flow(request_id)).terminal and v,
            timeout,
            f"flow {request_id} to end",
        )


def wait_for(
    condition: Callable[[], Any],
    timeout: float = 20.0,
    what: str = "",
    ignoring: tuple[type[Exception], ...] = (),
    interval: float = 0.05,
) -> Any:
    """Poll until condition() is truthy (an ``ignoring`` error counts as not yet) and return
    it; fail with a clear message at the deadline."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            result = condition()
        except ignoring:
            result = None
        if result:
            return result
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout} s waiting for {what or condition}")


# Prometheus samples by (name, sorted labels), as read from a /metrics page
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def metric_samples(text: str) -> Samples:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def moved(before: Samples, after: Samples, name: str, **labels: str) -> float:
    """How much one series grew between two scrapes."""
    key = (name, tuple(sorted(labels.items())))
    return after.get(key, 0.0) - before.get(key, 0.0)


def env_fields(model: type[BaseModel], prefix: str = "OTPFLOW_") -> dict[str, Any]:
    """Every setting's environment variable name, with the type of its value."""
    fields: dict[str, Any] = {}
    for name, info in model.model_fields.items():
        annotation = info.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            fields |= env_fields(annotation, f"{prefix}{name.upper()}__")
        else:
            fields[f"{prefix}{name.upper()}"] = annotation
    return fields


def recipient() -> str:
    """A fresh number per flow, so the simulator's log can be read per test."""
    return "91" + str(random.randint(7_000_000_000, 9_999_999_999))


def mobile_numbers(region: str, count: int, first: int = 0) -> list[str]:
    """``count`` valid mobile numbers of a region in a row (digits with the country code, no
    +), from its example number on: sequential, as a pumping attack dials them. ``first``
    skips ahead (1000 further is the next prefix, at 3 prefix digits)."""
    example = phonenumbers.example_number_for_type(region, phonenumbers.PhoneNumberType.MOBILE)
    candidate = int(f"{example.country_code}{example.national_number}") + first
    found: list[str] = []
    while len(found) < count:
        if _is_mobile(str(candidate)):
            found.append(str(candidate))
        candidate += 1
    return found


# the countries the fraud benchmarks draw people's numbers from
MOBILE_COUNTRIES = ("GB", "IN", "US", "DE", "BR", "FR", "NG")


def random_mobile(region: str, rng: random.Random) -> str:
    """A valid mobile number of a region, its last six digits random: a person's number."""
    example = phonenumbers.example_number_for_type(region, phonenumbers.PhoneNumberType.MOBILE)
    digits = f"{example.country_code}{example.national_number}"
    while True:
        candidate = digits[:-6] + f"{rng.randrange(10**6):06d}"
        if _is_mobile(candidate):
            return candidate


def _is_mobile(digits: str) -> bool:
    number = phonenumbers.parse("+" + digits)
    return phonenumbers.is_valid_number(number) and phonenumbers.number_type(number) in (
        phonenumbers.PhoneNumberType.MOBILE,
        phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE,
    )


def is_uuid4(value: Any) -> bool:
    """A random (version 4) UUID in a string, as OTPflow and the simulator make their ids."""
    return isinstance(value, str) and uuid.UUID(value).version == 4


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


def in_ci() -> bool:
    """CI sets CI=true: there a missing service fails the run, so it cannot go green by skipping."""
    return os.environ.get("CI", "").lower() in ("true", "1", "yes")


@functools.cache
def rabbitmq_problem() -> str | None:
    """Why the RabbitMQ at RABBITMQ_URL cannot be used, or None: asked once per run, in ~1 s."""
    import kombu

    try:
        with kombu.Connection(RABBITMQ_URL, connect_timeout=1) as connection:
            connection.ensure_connection(max_retries=1, interval_start=0, timeout=1)
    except Exception as exc:  # refused, timed out, login refused: all say the same to a tester
        return " ".join(f"{type(exc).__name__}: {exc}".split())
    return None


def require_rabbitmq() -> None:
    """Skip the calling test, with one line naming what to start, when RabbitMQ does not
    answer; fail it instead under CI."""
    problem = rabbitmq_problem()
    if problem is None:
        return
    message = (
        f"RabbitMQ not reachable at {masked(RABBITMQ_URL)}: "
        f"start RabbitMQ or set OTPFLOW_TEST_RABBITMQ ({problem})"
    )
    if in_ci():
        pytest.fail(f"{message}; CI=true, so this fails instead of skipping", pytrace=False)
    pytest.skip(message)


def clean_broker(broker_url: str) -> None:
    """Start from empty queues: flush a Redis broker database, purge RabbitMQ's queues."""
    if broker_url.startswith("redis"):
        redis.Redis.from_url(broker_url).flushdb()
        return
    from otpflow.flow.contract import make_celery

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
    webhooks = HttpRecorder()
    stack = Stack(
        redis_url=stack_redis_url or state_url,
        broker_url=broker_url,
        api_keys=f"{WORKSPACE}:{API_KEY},other-ws:other-key",
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
    system.webhooks.close()
    system.http.close()


# Short recovery settings for fault tests, so every fault resolves in seconds.
FAULT_ENV = {
    "OTPFLOW_RECOVERY_GRACE_SECONDS": "2",
    "OTPFLOW_SEND_BUDGET_SECONDS": "4",
    "OTPFLOW_PROVIDER_TIMEOUT_SECONDS": "2",
    "OTPFLOW_WEBHOOK_MAX_ATTEMPTS": "3",
}
# the longest a lost send can stay unnoticed: its lease (4 + 2 + 1), plus the grace a timer
# taken by a worker killed at that moment stays leased, plus a second to act
RECOVERY_SECONDS = 7 + 2 + 1


# Mixed outcomes for load and fault tests: kind -> (simulator rules for one recipient, steps,
# the flow's expected end). Total timeouts stay short so faults resolve in seconds.
# WhatsApp delivers after 200 ms, but its timeout is 6 s: during a fault on this 2-core machine
# a report has been seen to reach the API 3.2 s after the send (1 s is usual), and a flow that
# times out because the machine is slow says nothing about recovery.
DELIVERING_WHATSAPP_TIMEOUT = 6


def mixed_kind(kind: str, to: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]], str]:
    whatsapp = whatsapp_step(to, timeout=DELIVERING_WHATSAPP_TIMEOUT)
    if kind == "sms_delivers":
        rules = [{"channel": "sms", "recipient": to, "action": "deliver", "delay_ms": 300}]
        return rules, [sms_step(to, timeout=3), whatsapp], "delivered"
    if kind == "sms_silent":
        rules = [{"channel": "sms", "recipient": to, "action": "never"}]
        return rules, [sms_step(to, timeout=3), whatsapp], "delivered"
    if kind == "sms_fails":
        rules = [{"channel": "sms", "recipient": to, "action": "fail", "delay_ms": 500}]
        return rules, [sms_step(to, timeout=10), whatsapp], "delivered"
    if kind == "all_silent":
        rules = [{"channel": "*", "recipient": to, "action": "never"}]
        return rules, [sms_step(to, timeout=3), whatsapp_step(to, timeout=3)], "failed"
    raise ValueError(kind)


MIXED_KINDS = ("sms_delivers", "sms_silent", "sms_fails", "all_silent")
MIXED_LONGEST_FLOW_SECONDS = 10 + DELIVERING_WHATSAPP_TIMEOUT  # sms_fails: SMS up to 10 s


@dataclass
class PlannedFlow:
    recipient: str
    kind: str
    body: dict[str, Any]
    expected: str
    request_id: str = ""


def plan_mixed(system: System, count: int) -> list[PlannedFlow]:
    """`count` flows cycling through MIXED_KINDS, with the simulator told how each behaves."""
    plans, rules = [], []
    for index in range(count):
        to, kind = recipient(), MIXED_KINDS[index % len(MIXED_KINDS)]
        kind_rules, steps, expected = mixed_kind(kind, to)
        rules += kind_rules
        plans.append(PlannedFlow(to, kind, {"messages": steps}, expected))
    rules.append({"channel": "whatsapp", "action": "deliver", "delay_ms": 200})
    system.rules(*rules)
    return plans


def statuses(system: System, request_ids: list[str]) -> list[str]:
    pipe = system.state.pipeline(transaction=False)
    for request_id in request_ids:
        pipe.hget(f"otpflow:flow:{request_id}", "status")
    return [(s or b"missing").decode() for s in pipe.execute()]


def wait_all_ended(system: System, request_ids: list[str], timeout: float) -> float:
    """Seconds until every flow ended; fails the test with a count at the deadline."""
    start = time.monotonic()
    terminal = {"delivered", "failed", "cancelled"}
    while True:
        pending = [s for s in statuses(system, request_ids) if s not in terminal]
        if not pending:
            return time.monotonic() - start
        if time.monotonic() - start > timeout:
            pytest.fail(f"{len(pending)} of {len(request_ids)} flows not ended after {timeout} s")
        time.sleep(0.2)


def duplicate_sends(system: System) -> dict[tuple[str, str], int]:
    """(recipient, channel) pairs the simulator accepted more than once."""
    counts: dict[tuple[str, str], int] = {}
    for request in system.sim_requests():
        if request["status_code"] == 200:
            key = (request["recipient"], request["channel"])
            counts[key] = counts.get(key, 0) + 1
    return {key: n for key, n in counts.items() if n > 1}


# -- for the simulator's and the providers' tests -------------------------------------------


class HttpRecorder:
    """A real HTTP server on 127.0.0.1 that records every POST (path, headers, raw and JSON
    body) and answers it with ``answer(record)``'s status, 200 by default: a caller's webhook
    endpoint, a provider's postback target, or a provider that is down."""

    def __init__(self, answer: Callable[[dict[str, Any]], int] = lambda _: 200) -> None:
        self.received: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("content-length", "0")))
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = None
                record = {
                    "path": self.path,
                    "headers": dict(self.headers),
                    "content_type": self.headers.get("content-type"),
                    "raw": raw,
                    "body": body,
                }
                with recorder.lock:
                    recorder.received.append(record)
                status = answer(record)
                self.send_response(status)
                self.send_header("content-length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def at(self, path: str) -> str:
        return self.url + path

    def for_path(self, path: str) -> list[dict[str, Any]]:
        """Every POST to ``path`` so far, as recorded."""
        with self.lock:
            return [r for r in self.received if r["path"] == path]

    def bodies(self, path: str) -> list[Any]:
        """Bodies posted to ``path`` so far (each DLR test uses its own path)."""
        return [r["body"] for r in self.for_path(path)]

    def for_request(self, request_id: str) -> list[Any]:
        """Bodies posted so far about one simulator request (by their ``request_id``)."""
        with self.lock:
            bodies = [r["body"] for r in self.received if isinstance(r["body"], dict)]
        return [body for body in bodies if body.get("request_id") == request_id]

    def wait(self, path: str, count: int = 1) -> list[Any]:
        """Poll until exactly ``count`` bodies were posted to ``path``; return them."""
        found: list[Any] = []

        def check() -> bool:
            found[:] = self.bodies(path)
            return len(found) == count

        wait_for(check, 5)
        return found

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def fails_on_fail_paths(record: dict[str, Any]) -> int:
    """As a failing postback target: a path under /fail answers 500 (providers retry it)."""
    return 500 if record["path"].startswith("/fail") else 200


@contextmanager
def running(app: Any) -> Iterator[httpx.Client]:
    """Serve ``app`` with uvicorn on a free loopback port in a thread; yield a client for it."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        wait_for(lambda: server.started or not thread.is_alive(), 15, "the simulator to start")
        assert server.started, "simulator did not start"
        host, port = sock.getsockname()
        with httpx.Client(base_url=f"http://{host}:{port}", timeout=10) as http:
            yield http
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


# --- raw sockets: replies written byte by byte --------------------------------------------


class Receiver:
    """A TCP server on 127.0.0.1 that hands each connection to ``serve``.

    Not :class:`HttpRecorder`: these tests write the answer byte by byte (a trickled status
    line, a body never finished, a hang-up mid-reply), which an HTTP server library won't.
    """

    def __init__(self, serve: Callable[[socket.socket], None]) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.requests: list[bytes] = []
        self.closed_early = threading.Event()
        self._serve = serve
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        with conn:
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                data += chunk
            head, _, body = data.partition(b"\r\n\r\n")
            length = next(
                (
                    int(line.split(b":")[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                ),
                0,
            )
            while len(body) < length:
                body += conn.recv(65536)
            self.requests.append(head + b"\r\n\r\n" + body)
            try:
                self._serve(conn)
            except OSError:  # the client hung up while we were still answering
                self.closed_early.set()

    def close(self) -> None:
        # shutdown wakes the thread blocked in accept(); a bare close may leave it blocked on
        # the descriptor number, which the next test's listener can be given
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)
        self.listener.close()


def ok(conn: socket.socket) -> None:
    conn.sendall(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n")


def trickle(data: bytes, every: float) -> Callable[[socket.socket], None]:
    def serve(conn: socket.socket) -> None:
        for byte in data:
            conn.sendall(bytes([byte]))
            time.sleep(every)

    return serve
