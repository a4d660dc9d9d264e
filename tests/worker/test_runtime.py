"""The per-process runtime: warmed before the first task, so no task waits behind its build."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest
import redis

from otpflow.config.settings import Settings
from otpflow.flow.contract import make_celery
from otpflow.worker.runtime import Runtime


def test_warm_builds_the_client_the_providers_and_the_connections(
    redis_client: redis.Redis,
) -> None:
    url = redis_client.connection_pool.connection_kwargs
    settings = Settings(
        redis_url=f"redis://{url['host']}:{url['port']}/{url['db']}", routes={"sms": "zixflow"}
    )
    celery = make_celery(settings)
    runtime = Runtime(settings, celery)
    runtime.warm()
    assert {"http", "providers", "redis"} <= runtime.__dict__.keys()
    runtime.close()


@pytest.fixture
def unfrozen() -> Iterator[None]:
    """A heap with nothing frozen, as a process starts, and so again after the test."""
    gc.unfreeze()
    yield
    gc.unfreeze()


def test_warm_freezes_what_was_built_out_of_the_collectors_reach(unfrozen: None) -> None:
    # a full collection would otherwise walk every module, client and the app (30-90 ms)
    settings = Settings(redis_url="redis://127.0.0.1:1/0", routes={"sms": "zixflow"})
    runtime = Runtime(settings, make_celery(settings))
    runtime.warm()
    assert gc.get_freeze_count() > 10_000
    runtime.close()


def test_warm_never_stops_a_worker_starting_while_redis_is_away(
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = Settings(redis_url="redis://127.0.0.1:1/0", routes={"sms": "zixflow"})
    runtime = Runtime(settings, make_celery(settings))
    runtime.warm()
    assert "providers" in runtime.__dict__
    assert "could not warm connections" in caplog.text
    runtime.close()
