"""A fresh system per fault test, with every Redis connection running through a TCP proxy the
test controls, and short recovery settings so faults resolve in seconds."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from tcp_proxy import TcpProxy

from harness import (
    FAULT_ENV,
    RABBITMQ_URL,
    REDIS_HOST,
    System,
    require_rabbitmq,
    start_system,
    stop_system,
)

STATE_DB, BROKER_DB = 5, 6


@pytest.fixture
def fault_system(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Callable[..., System]]:
    """Start a system whose processes reach Redis through ``system.proxy``."""
    started: list[System] = []
    proxies: list[TcpProxy] = []

    def start(broker: str = "redis", workers: int = 2) -> System:
        if broker == "rabbitmq":
            require_rabbitmq()
        port = int(REDIS_HOST.rsplit(":", 1)[1])
        proxy = TcpProxy(port).start()
        proxies.append(proxy)
        through_proxy = f"redis://127.0.0.1:{proxy.port}"
        broker_url = f"{through_proxy}/{BROKER_DB}" if broker == "redis" else RABBITMQ_URL
        log_dir = Path(os.environ.get("OTPFLOW_TEST_LOGS", tmp_path)) / request.node.name
        system = start_system(
            log_dir,
            state_url=f"{REDIS_HOST}/{STATE_DB}",
            stack_redis_url=f"{through_proxy}/{STATE_DB}",
            broker_url=broker_url,
            workers=workers,
            env=FAULT_ENV,
        )
        system.proxy = proxy
        started.append(system)
        return system

    yield start
    for system in started:
        stop_system(system)
    for proxy in proxies:
        proxy.stop()
