"""The task contract: what an outcome sets in motion, and where a task goes when it cannot be
published now."""

from __future__ import annotations

import inspect
import json

import pytest
import redis

from otpflow.config.settings import Settings
from otpflow.flow import keys
from otpflow.flow.contract import (
    ARGUMENTS,
    NOTIFY_SWITCH,
    NOTIFY_TERMINAL,
    RELAY_DLR,
    REPUBLISH_DELAY_SECONDS,
    SEND_STEP,
    TASK_ROUTES,
    Tasks,
    make_celery,
)
from otpflow.flow.outcomes import Outcome
from otpflow.flow.store import FlowStore

from fakes import TEST_KEYRING, RecordingTasks


def test_each_helper_takes_its_tasks_arguments_in_order() -> None:
    # the helpers spell the arguments again, for their callers' sake: held to ARGUMENTS here
    helpers = {
        SEND_STEP: Tasks.send,
        NOTIFY_SWITCH: Tasks.notify_switch,
        NOTIFY_TERMINAL: Tasks.notify_terminal,
        RELAY_DLR: Tasks.relay_dlr,
    }
    assert helpers.keys() == ARGUMENTS.keys() == TASK_ROUTES.keys()
    for name, helper in helpers.items():
        self, *parameters, delay = inspect.signature(helper).parameters
        assert (self, delay) == ("self", "delay")
        assert tuple(parameters) == ARGUMENTS[name], name


@pytest.mark.parametrize(
    ("outcome", "expected"),
    [
        (Outcome("switched", "2", notify=True), [("send", (2, 1, 0), 0), ("notify", (1, 2), 0)]),
        (Outcome("switched", "2"), [("send", (2, 1, 0), 0)]),
        (Outcome("exhausted", "", notify=True), [("notify_terminal", (1,), 0)]),
        (Outcome("delivered", "late", notify=True), [("notify_terminal", (1,), 0)]),
        (Outcome("delivered"), []),
        (Outcome("recorded"), []),
        (Outcome("moved_on", "2"), []),
    ],
)
def test_what_an_outcome_sets_in_motion(outcome: Outcome, expected: list) -> None:
    tasks = RecordingTasks()
    tasks.follow_up(outcome, "flow-1", 1)
    assert tasks.calls == expected


def test_a_delayed_task_waits_in_the_timers_index(redis_client: redis.Redis) -> None:
    store = FlowStore(redis_client, TEST_KEYRING, ttl_seconds=600)
    tasks = Tasks(make_celery(Settings(broker_url="memory://")), store, lease_seconds=30)
    tasks.notify_terminal("flow-1", attempt=3, delay=30)
    ((member, due),) = redis_client.zrange(keys.timers(), 0, -1, withscores=True)
    assert json.loads(member) == [NOTIFY_TERMINAL, ["flow-1", 3]]
    seconds, micros = redis_client.time()
    assert 29 < due - (seconds + micros / 1e6) <= 30


def test_a_task_the_broker_refuses_is_kept_for_the_timer_loop(
    redis_client: redis.Redis,
) -> None:
    store = FlowStore(redis_client, TEST_KEYRING, ttl_seconds=600)
    nowhere = make_celery(Settings(broker_url="redis://127.0.0.1:1/0"))
    tasks = Tasks(nowhere, store, 30, {"retry": False})
    tasks.notify_terminal("flow-1")
    ((member, due),) = redis_client.zrange(keys.timers(), 0, -1, withscores=True)
    assert json.loads(member) == [NOTIFY_TERMINAL, ["flow-1", 1]]
    seconds, micros = redis_client.time()
    assert 0 < due - (seconds + micros / 1e6) <= REPUBLISH_DELAY_SECONDS
    nowhere.close()
