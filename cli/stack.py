"""Start and stop OTPflow's processes together: the demo, the tests and the benchmarks use it.

Each process is a real ``otpflow`` subprocess in its own process group, configured only by
environment variables, so what runs here is what runs in production.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import redis
from kombu.exceptions import OperationalError as KombuOperationalError

from otpflow.config.settings import Settings, overrides_from_names

SIM_API_KEY = "sim-key"
SIM_WORKSPACE = "sim-workspace"
SIM_MESSAGEFLOW_KEY, SIM_MESSAGEFLOW_TOKEN = "mf-app-key", "mf-token"
SIM_GATEWAY_AUTH = "gw-auth"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def redis_answers(url: str) -> bool:
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except (redis.RedisError, OSError):
        return False


class EmbeddedRedis:
    """A Redis-protocol server in this process (fakeredis, Lua through lupa) for machines
    without Redis. For the demo only: it keeps nothing and is slower than Redis."""

    def __init__(self) -> None:
        from fakeredis import TcpFakeServer

        self.port = free_port()
        self._server = TcpFakeServer(("127.0.0.1", self.port), server_type="redis")
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@dataclass
class Stack:
    """API, simulator and workers on loopback, sharing one Redis."""

    redis_url: str
    broker_url: str = ""
    api_port: int = field(default_factory=free_port)
    sim_port: int = field(default_factory=free_port)
    smtp_port: int = field(default_factory=free_port)
    api_keys: str = "demo:demo-key"
    secret: str = "stack-secret-of-this-test-stack-" + str(os.getpid())
    extra_env: dict[str, str] = field(default_factory=dict)
    log_dir: Path | None = None
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    restarts: dict[str, int] = field(default_factory=dict)
    _args: dict[str, tuple[str, ...]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _watching: bool = False

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def sim_url(self) -> str:
        return f"http://127.0.0.1:{self.sim_port}"

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("OTPFLOW_")}
        env.update(
            {
                "OTPFLOW_REDIS_URL": self.redis_url,
                "OTPFLOW_BROKER_URL": self.broker_url or self.redis_url,
                "OTPFLOW_PUBLIC_URL": self.api_url,
                "OTPFLOW_SECRET": self.secret,
                "OTPFLOW_API_KEYS": self.api_keys,
                "OTPFLOW_PROVIDERS__ZIXFLOW__BASE_URL": self.sim_url,
                "OTPFLOW_PROVIDERS__ZIXFLOW__API_KEY": SIM_API_KEY,
                "OTPFLOW_PROVIDERS__ZIXFLOW__WORKSPACE_ID": SIM_WORKSPACE,
                "OTPFLOW_PROVIDERS__MESSAGEFLOW__BASE_URL": self.sim_url,
                "OTPFLOW_PROVIDERS__MESSAGEFLOW__APPLICATION_KEY": SIM_MESSAGEFLOW_KEY,
                "OTPFLOW_PROVIDERS__MESSAGEFLOW__AUTHORIZATION": SIM_MESSAGEFLOW_TOKEN,
                "OTPFLOW_PROVIDERS__GATEWAY__BASE_URL": self.sim_url,
                "OTPFLOW_PROVIDERS__GATEWAY__AUTH": SIM_GATEWAY_AUTH,
                "OTPFLOW_PROVIDERS__SMTP__HOST": "127.0.0.1",
                "OTPFLOW_PROVIDERS__SMTP__PORT": str(self.smtp_port),
                "OTPFLOW_ALLOW_PRIVATE_WEBHOOKS": "true",
                "PYTHONUNBUFFERED": "1",
                "PYTHONWARNINGS": "ignore::UserWarning",
            }
        )
        env.update(self.extra_env)
        return env

    def settings(self) -> Settings:
        """The settings the stack's processes run with (its store, broker, secret and
        ``extra_env``), for a producer in this process: a benchmark's load generator."""
        return Settings(**overrides_from_names(self.env()))

    def _spawn(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        out: int | object = subprocess.DEVNULL
        if self.log_dir is not None:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            out = open(self.log_dir / f"{name}.log", "ab")  # noqa: SIM115 (closed with the process)
        process = subprocess.Popen(
            [sys.executable, "-m", "otpflow.cli.main", *args],
            env=self.env(),
            stdout=out,  # type: ignore[arg-type]
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.processes[name] = process
        self._args[name] = args
        return process

    def _supervise(self) -> None:
        """Restart a worker that exits by itself, as a deployment's supervisor would
        (docker-compose's ``restart: unless-stopped``). Celery 5.7 / kombu 5.7 workers can
        die with "Unrecoverable error" when the broker connection drops mid-publish."""
        if self._watching:
            return
        self._watching = True

        def watch() -> None:
            while self._watching:
                with self._lock:
                    for name, process in list(self.processes.items()):
                        if name.startswith("worker") and process.poll() is not None:
                            self.restarts[name] = self.restarts.get(name, 0) + 1
                            self._spawn(name, *self._args[name])
                time.sleep(0.5)

        threading.Thread(target=watch, daemon=True).start()

    def start_simulator(self) -> None:
        self._spawn(
            "simulator",
            "simulator",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.sim_port),
            "--smtp-port",
            str(self.smtp_port),
        )

    def start_api(self, processes: int = 1) -> None:
        self._spawn(
            "api",
            "api",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.api_port),
            "--processes",
            str(processes),
        )

    def start_worker(
        self, name: str = "worker", concurrency: int = 8, pool: str = "threads"
    ) -> None:
        self._spawn(
            name,
            "worker",
            "--concurrency",
            str(concurrency),
            "--pool",
            pool,
            "--hostname",
            f"{name}-{os.getpid()}@%h",
        )
        self._supervise()

    def start(self, workers: int = 1, concurrency: int = 8) -> Stack:
        self.start_simulator()
        self.start_api()
        for index in range(workers):
            self.start_worker(f"worker{index + 1}", concurrency)
        self.wait_ready()
        return self

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Until the API and simulator answer and every worker consumes its queues."""
        deadline = time.monotonic() + timeout
        for url in (f"{self.api_url}/healthz", f"{self.sim_url}/healthz"):
            while True:
                self._raise_if_dead()
                try:
                    if httpx.get(url, timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{url} did not answer within {timeout} s")
                time.sleep(0.1)
        workers = [name for name in self.processes if name.startswith("worker")]
        if workers:
            self.wait_workers(len(workers), deadline - time.monotonic())

    def wait_workers(self, count: int, timeout: float) -> None:
        from otpflow.config.settings import Settings
        from otpflow.flow.contract import make_celery

        app = make_celery(Settings(redis_url=self.redis_url, broker_url=self.broker_url))
        deadline = time.monotonic() + timeout
        try:
            while True:
                self._raise_if_dead()
                try:
                    replies = app.control.ping(timeout=0.5) or []
                except (redis.RedisError, OSError, KombuOperationalError):
                    # a broker still starting (or the embedded one) may refuse a broadcast
                    replies = []
                if len(replies) >= count:
                    return
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{count} workers did not come up within {timeout:.0f} s")
        finally:
            app.close()

    def _raise_if_dead(self) -> None:
        for name, process in self.processes.items():
            if process.poll() is not None:
                raise RuntimeError(f"{name} exited with code {process.returncode}")

    def stop_process(self, name: str, sig: int = signal.SIGTERM, timeout: float = 20.0) -> int:
        with self._lock:  # taken away from the supervisor first: it must not come back
            process = self.processes.pop(name)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        try:
            return process.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            return process.wait(5)

    def stop(self) -> None:
        self._watching = False
        for name in list(self.processes):
            self.stop_process(name)

    def __enter__(self) -> Stack:
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()
