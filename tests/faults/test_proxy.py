"""The fault tests' TCP proxy: a cut lets no connection through until restored, not even the
first one opened after it (the cause of a flaky /readyz that said "redis ok" during a cut)."""

from __future__ import annotations

import contextlib
import socket

import pytest
from tcp_proxy import TcpProxy

from harness import REDIS_HOST

pytestmark = pytest.mark.faults


def pong(port: int) -> bool:
    """Whether a new connection through the proxy reaches Redis."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
            sock.settimeout(1)
            sock.sendall(b"PING\r\n")
            return sock.recv(64) == b"+PONG\r\n"
    except OSError:
        return False


def test_a_cut_drops_every_connection_and_lets_no_new_one_through() -> None:
    proxy = TcpProxy(int(REDIS_HOST.rsplit(":", 1)[1])).start()
    try:
        established = socket.create_connection(("127.0.0.1", proxy.port), timeout=1)
        established.sendall(b"PING\r\n")
        assert established.recv(64) == b"+PONG\r\n"

        proxy.cut()
        with contextlib.suppress(OSError):
            assert established.recv(64) == b"", "an established connection survived the cut"
        established.close()
        # the first connection after the cut used to be accepted by the thread still blocked
        # in accept() on the closed listener, and reached Redis for the whole cut
        assert [pong(proxy.port) for _ in range(3)] == [False, False, False]

        proxy.restore()
        assert pong(proxy.port)
    finally:
        proxy.stop()
