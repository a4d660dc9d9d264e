"""The real system, started once per test session for the integration tests."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness import BROKER_URL, RABBITMQ_URL, REDIS_HOST, System, start_system, stop_system


def _log_dir(factory: pytest.TempPathFactory, name: str) -> Path:
    base = os.environ.get("OTPFLOW_TEST_LOGS")
    return Path(base) / name if base else factory.mktemp(name)


# Email through the simulator's SMTP server, which here stands for the recipients' own mail
# system: its acceptance is the delivery.
EMAIL_BY_SMTP = {
    "OTPFLOW_ROUTES__EMAIL": "smtp",
    "OTPFLOW_PROVIDERS__SMTP__ACCEPTED_IS_DELIVERED": "true",
}


@pytest.fixture(scope="session")
def redis_system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    running = start_system(
        _log_dir(tmp_path_factory, "redis-broker"), broker_url=BROKER_URL, env=EMAIL_BY_SMTP
    )
    yield running
    stop_system(running)


@pytest.fixture(scope="session")
def observed_system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    """A system of its own, for tests that read totals (metrics, Flower): no other test's
    flows are in flight on it."""
    running = start_system(
        _log_dir(tmp_path_factory, "observed"),
        state_url=f"{REDIS_HOST}/3",
        broker_url=f"{REDIS_HOST}/4",
    )
    yield running
    stop_system(running)


@pytest.fixture
def system(redis_system: System) -> System:
    return redis_system


@pytest.fixture(scope="session")
def rabbitmq_system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    running = start_system(
        _log_dir(tmp_path_factory, "rabbitmq-broker"),
        state_url=BROKER_URL.rsplit("/", 1)[0] + "/12",
        broker_url=RABBITMQ_URL,
    )
    yield running
    stop_system(running)


@pytest.fixture(params=["redis", "rabbitmq"])
def any_system(request: pytest.FixtureRequest) -> System:
    """The same test on each broker: Redis, and RabbitMQ for users who outgrow it."""
    return request.getfixturevalue(f"{request.param}_system")
