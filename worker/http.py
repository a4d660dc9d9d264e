"""The worker's HTTP clients, each with a total deadline per call.

httpx's timeouts are per operation: a server that trickles its reply a byte at a time, each
within the read timeout, holds a call (and a worker thread) for as long as it likes. A call
made inside :func:`deadline` ends at most that many seconds from its start, in total: every
connect, read and write of a client built by :func:`http_client` gets only what is left.
Providers' clients and callers' webhook clients are built here; webhooks add their own
address pinning (:class:`otpflow.worker.webhooks.PinnedBackend`).
"""

from __future__ import annotations

import contextlib
import contextvars
import ssl
import time
from collections.abc import Iterable, Iterator
from typing import Any

import httpcore
import httpx

# the deadline (time.monotonic()) of the HTTP call running in this thread, if any
_deadline: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "http_deadline", default=None
)


@contextlib.contextmanager
def deadline(seconds: float) -> Iterator[None]:
    """Every connect, read and write inside ends at most ``seconds`` from now, in total."""
    token = _deadline.set(time.monotonic() + seconds)
    try:
        yield
    finally:
        _deadline.reset(token)


def remaining(timeout: float | None) -> float | None:
    """``timeout`` cut to what is left of the current call's deadline; a timeout error when
    nothing is left."""
    ends = _deadline.get()
    if ends is None:
        return timeout
    left = ends - time.monotonic()
    if left <= 0:
        raise httpcore.ReadTimeout("the call's deadline has passed")
    return left if timeout is None else min(timeout, left)


class DeadlineStream(httpcore.NetworkStream):
    """A connection whose every read and write ends by the current call's deadline."""

    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, remaining(timeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, remaining(timeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        return DeadlineStream(
            self._inner.start_tls(ssl_context, server_hostname, remaining(timeout))
        )

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class DeadlineBackend(httpcore.SyncBackend):
    """Connections that keep the current call's deadline."""

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        stream = super().connect_tcp(host, port, remaining(timeout), local_address, socket_options)
        return DeadlineStream(stream)


def http_client(
    timeout: httpx.Timeout,
    backend: httpcore.SyncBackend | None = None,
    ssl_context: ssl.SSLContext | None = None,
) -> httpx.Client:
    """A client whose calls keep :func:`deadline` (through ``backend``, a
    :class:`DeadlineBackend` by default), with no redirects followed. One per process: building
    one costs 15-25 ms of CPU."""
    transport = httpx.HTTPTransport()
    # httpx takes no network backend; its pool is rebuilt with one (httpx's own settings)
    transport._pool = httpcore.ConnectionPool(
        ssl_context=ssl_context or httpx.create_ssl_context(),
        max_connections=100,
        max_keepalive_connections=20,
        network_backend=backend or DeadlineBackend(),
    )
    return httpx.Client(transport=transport, timeout=timeout, follow_redirects=False)
