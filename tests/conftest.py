"""Shared fixtures: a real Redis for the store and integration tests.

Tests use their own Redis database (OTPFLOW_TEST_REDIS_URL, default db 15 of the local Redis)
and flush it; they never touch db 0.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
import redis

from otpflow.cli.errors import masked

from harness import EMPTIED_DATABASES, RABBITMQ_URL, REDIS_HOST, in_ci, require_rabbitmq

# OTPFLOW_TEST_REDIS moves every test database to another server (one per concurrent test run)
TEST_REDIS_URL = os.environ.get(
    "OTPFLOW_TEST_REDIS_URL", os.environ.get("OTPFLOW_TEST_REDIS", "redis://127.0.0.1:6379") + "/15"
)


def pytest_report_header() -> list[str]:
    databases = ", ".join(str(number) for number in EMPTIED_DATABASES if number != 15)
    return [
        f"otpflow: Redis {masked(REDIS_HOST)} (OTPFLOW_TEST_REDIS): empties dbs {databases} "
        f"and {masked(TEST_REDIS_URL)} (OTPFLOW_TEST_REDIS_URL); never db 0",
        f"otpflow: RabbitMQ {masked(RABBITMQ_URL)} (OTPFLOW_TEST_RABBITMQ): without it its tests "
        + ("fail (CI=true)" if in_ci() else "skip"),
    ]


def needs_rabbitmq(item: pytest.Item) -> bool:
    """A test on the RabbitMQ system, or run once per broker and now on RabbitMQ."""
    callspec = getattr(item, "callspec", None)
    params = callspec.params.values() if callspec is not None else ()
    return "rabbitmq_system" in getattr(item, "fixturenames", ()) or "rabbitmq" in params


def pytest_runtest_setup(item: pytest.Item) -> None:
    # before any fixture, so a missing RabbitMQ is one line, not a kombu traceback
    if needs_rabbitmq(item):
        require_rabbitmq()


@pytest.fixture
def redis_client() -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(TEST_REDIS_URL)
    try:
        client.ping()
    except redis.ConnectionError:
        pytest.fail(f"no Redis at {TEST_REDIS_URL}: start one (see README)")
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No OTPFLOW_* variable of this process may change what a test builds."""
    for name in list(os.environ):
        if name.startswith("OTPFLOW_"):
            monkeypatch.delenv(name)
