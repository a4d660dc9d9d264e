"""Helpers for the provider tests: the simulator over a real socket, a real DLR receiver."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
import uvicorn

from otpflow.simulator.app import create_app


def wait_until(cond: Callable[[], Any], timeout: float = 5.0) -> Any:
    """Poll ``cond`` until it returns something truthy, or fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = cond()
        if value:
            return value
        time.sleep(0.02)
    pytest.fail(f"condition not met within {timeout}s")


class DlrReceiver:
    """A real HTTP server on 127.0.0.1 recording every POST (any JSON body) by path."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", "0"))
                body = json.loads(self.rfile.read(length))
                with receiver.lock:
                    receiver.received.append(
                        {
                            "path": self.path,
                            "content_type": self.headers.get("content-type"),
                            "body": body,
                        }
                    )
                self.send_response(200)
                self.send_header("content-length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def bodies(self, path: str) -> list[Any]:
        """Bodies posted to ``path`` so far (each DLR test uses its own path)."""
        with self.lock:
            return [r["body"] for r in self.received if r["path"] == path]

    def wait(self, path: str, count: int = 1) -> list[Any]:
        """Poll until exactly ``count`` bodies were posted to ``path``; return them."""
        found: list[Any] = []

        def check() -> bool:
            found[:] = self.bodies(path)
            return len(found) == count

        wait_until(check)
        return found

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def dlrs() -> Iterator[DlrReceiver]:
    rec = DlrReceiver()
    yield rec
    rec.close()


@contextmanager
def running(app: Any) -> Iterator[httpx.Client]:
    """Serve ``app`` with uvicorn on a free loopback port in a thread; yield a client for it."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        wait_until(lambda: server.started or not thread.is_alive(), timeout=15)
        assert server.started, "simulator did not start"
        host, port = sock.getsockname()
        with httpx.Client(base_url=f"http://{host}:{port}", timeout=10) as http:
            yield http
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


class Sim:
    """A running simulator: its HTTP client, its app and the /_sim helpers the tests use."""

    def __init__(self, http: httpx.Client, app: Any) -> None:
        self.http = http
        self.app = app

    def post(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.http.post(path, **kwargs)

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.http.get(path, **kwargs)

    def rules(self, *rules: dict[str, Any]) -> None:
        resp = self.http.post("/_sim/rules", json={"rules": list(rules)})
        assert resp.status_code == 200, resp.text

    def requests(self, **filters: str) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = self.http.get("/_sim/requests", params=filters).json()[
            "requests"
        ]
        return rows

    def postbacks(self, **filters: str) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = self.http.get("/_sim/postbacks", params=filters).json()[
            "postbacks"
        ]
        return rows

    def dlr(self, request_id: Any, **extra: Any) -> httpx.Response:
        return self.http.post("/_sim/dlr", json={"request_id": request_id, **extra})

    @staticmethod
    def wait(cond: Callable[[], Any], timeout: float = 5.0) -> Any:
        return wait_until(cond, timeout)


@pytest.fixture
def start_sim() -> Iterator[Callable[..., Sim]]:
    """``start_sim(**create_app_kwargs)``: a running simulator (stopped after the test)."""
    with ExitStack() as stack:

        def start(**kwargs: Any) -> Sim:
            kwargs.setdefault("default_delay_ms", 20)
            app = create_app(**kwargs)
            return Sim(stack.enter_context(running(app)), app)

        yield start


@pytest.fixture
def run_app() -> Callable[[Any], AbstractContextManager[httpx.Client]]:
    """``with run_app(app) as client:`` serves ``app`` until the block ends."""
    return running


@pytest.fixture
def wait() -> Callable[..., Any]:
    """``wait(cond, timeout=5.0)``: poll ``cond`` until truthy, or fail at the deadline."""
    return wait_until


@pytest.fixture
def sim(start_sim: Callable[..., Sim]) -> Sim:
    """A simulator with default credentials and a 20 ms DLR delay."""
    return start_sim()
