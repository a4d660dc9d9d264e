"""Shared fixtures: a real Redis for the store and integration tests.

Tests use their own Redis database (OTPFLOW_TEST_REDIS_URL, default db 15 of the local Redis)
and flush it; they never touch db 0.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
import redis

# OTPFLOW_TEST_REDIS moves every test database to another server (one per concurrent test run)
TEST_REDIS_URL = os.environ.get(
    "OTPFLOW_TEST_REDIS_URL", os.environ.get("OTPFLOW_TEST_REDIS", "redis://127.0.0.1:6379") + "/15"
)


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
