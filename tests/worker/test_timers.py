"""The timer loop on a real Redis: what it does with each kind of due timer, that many loops
share the timers with none fired twice, and how long it waits between passes."""

from __future__ import annotations

import json
import threading
from collections import Counter

import pytest
import redis
from kombu.exceptions import OperationalError

from otpflow.config.settings import Settings
from otpflow.flow import keys
from otpflow.flow.contract import NOTIFY_TERMINAL, SEND_STEP, Tasks, make_celery
from otpflow.flow.models import FlowRequest
from otpflow.flow.store import FlowStore
from otpflow.worker import timers
from otpflow.worker.timers import TimerLoop

from fakes import TEST_KEYRING, RecordingTasks
from harness import sms_step, whatsapp_step


def make_due(redis_client: redis.Redis) -> None:
    """Every timer due now, as if its time had come."""
    for member in redis_client.zrange(keys.timers(), 0, -1):
        redis_client.zadd(keys.timers(), {member: 0})


def new_flow(store: FlowStore, timeout: int = 7, confirmed: bool = True) -> str:
    body = {"messages": [sms_step("919876543210", timeout), whatsapp_step("919876543210")]}
    flow_id = store.create("ws", FlowRequest.parse(body))
    if confirmed:
        store.mark_enqueued(flow_id)
    return flow_id


@pytest.fixture
def store(redis_client: redis.Redis) -> FlowStore:
    return FlowStore(redis_client, TEST_KEYRING, ttl_seconds=600, grace_seconds=5)


def test_the_loop_acts_on_each_kind_of_due_timer(
    store: FlowStore, redis_client: redis.Redis
) -> None:
    never_claimed = new_flow(store)  # its send task was lost with a killed worker
    timed_out = new_flow(store, timeout=0)
    store.claim(timed_out, 0, 1, 30)
    store.accepted(timed_out, 0, "p1", "m1", 0)
    lease_expired = new_flow(store)  # its send task died mid-send
    store.claim(lease_expired, 0, 1, 0)
    never_confirmed = new_flow(store, confirmed=False)  # its producer answered 503
    waiting = new_flow(store, timeout=30)
    store.claim(waiting, 0, 1, 30)
    store.accepted(waiting, 0, "p1", "m2", 30)
    store.later(NOTIFY_TERMINAL, [waiting, 2], 0)  # a webhook retry
    store.later(SEND_STEP, [waiting, 0, 2, 0, 2], 0)  # a provider retry
    make_due(redis_client)
    redis_client.zadd(keys.timers(), {f"{waiting}:0": 10**10})  # not due
    seconds, _ = redis_client.time()
    redis_client.set(keys.claimed_through(), seconds + 3600)  # never_claimed was overtaken
    tasks = RecordingTasks()

    done, _ = TimerLoop(store, tasks, poll_seconds=0.05).run_once()

    assert done == Counter({"resend": 1, "switched": 2, "discarded": 1, "published": 2})
    assert sorted(tasks.calls) == sorted(
        [
            ("send", (0, 1, 0), 0),  # never_claimed, step 0 again
            ("send", (1, 1, 0), 0),  # timed_out, on to WhatsApp
            ("send", (1, 1, 0), 0),  # lease_expired, on to WhatsApp (never step 0 again)
            ("notify_terminal", (2,), 0),
            ("send", (0, 2, 0), 0),
        ]
    )
    assert store.get(never_confirmed) is None
    lease_view = store.get(lease_expired)
    assert lease_view is not None and lease_view.steps[0].reason == "send_lease_expired"
    # the published send left the index; the webhook stays, leased, until it ran; the
    # recovered step waits one grace period again
    remaining = {m.decode() for m in redis_client.zrange(keys.timers(), 0, -1)}
    webhook = json.dumps([NOTIFY_TERMINAL, [waiting, 2]], separators=(",", ":"))
    assert remaining == {
        f"{never_claimed}:0",
        f"{timed_out}:1",
        f"{lease_expired}:1",
        f"{waiting}:0",
        webhook,
    }
    seconds, micros = redis_client.time()
    lease = (redis_client.zscore(keys.timers(), webhook) or 0) - (seconds + micros / 1e6)
    assert 29 < lease <= 30


def test_a_webhook_that_ran_is_not_published_again(
    store: FlowStore, redis_client: redis.Redis
) -> None:
    tasks = Tasks(make_celery(Settings(broker_url="memory://")), store, lease_seconds=30)
    tasks.notify_terminal("f-1")  # kept, leased, and published
    assert redis_client.zcard(keys.timers()) == 1
    tasks.ran(NOTIFY_TERMINAL, ["f-1", 1])
    assert redis_client.zcard(keys.timers()) == 0
    # a loop that published it just before it ran does not put it back
    store.later(NOTIFY_TERMINAL, ["f-1", 1], 30, only_waiting=True)
    assert redis_client.zcard(keys.timers()) == 0


def test_an_entry_not_in_the_contract_is_dropped_unpublished(
    store: FlowStore, redis_client: redis.Redis
) -> None:
    store.later("os.system", ["rm -rf /"], 0)
    redis_client.zadd(keys.timers(), {"no step here": 0, "[1, 2, 3]": 0})
    tasks = RecordingTasks()
    done, _ = TimerLoop(store, tasks, poll_seconds=0.05).run_once()
    assert done == Counter({"dropped": 3}) and tasks.calls == []
    assert redis_client.zcard(keys.timers()) == 0


def test_a_task_the_broker_refused_stays_in_the_index(
    store: FlowStore, redis_client: redis.Redis
) -> None:
    class BrokerDown(RecordingTasks):
        def publish(self, name: str, args: list) -> None:
            raise OperationalError("broker unreachable")

    store.later(NOTIFY_TERMINAL, ["f-1", 2], 0)
    with pytest.raises(OperationalError):
        TimerLoop(store, BrokerDown(), poll_seconds=0.05).run_once()
    # still there, taken for one lease: published by whichever loop takes it next
    ((member, score),) = redis_client.zrange(keys.timers(), 0, -1, withscores=True)
    assert json.loads(member) == [NOTIFY_TERMINAL, ["f-1", 2]]
    seconds, micros = redis_client.time()
    assert score > seconds + micros / 1e6 + store.grace_seconds - 1


def test_the_loop_survives_an_unexpected_error(
    store: FlowStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    loop = TimerLoop(store, RecordingTasks(), poll_seconds=0.01)
    passes = []
    stop = threading.Event()

    def failing_pass() -> tuple[Counter[str], float]:
        passes.append(1)
        if len(passes) == 3:
            stop.set()
        raise ZeroDivisionError

    monkeypatch.setattr(loop, "run_once", failing_pass)
    monkeypatch.setattr(timers, "ERROR_PAUSE_SECONDS", 0.01)
    loop.run(stop)
    assert len(passes) == 3


def test_many_loops_fire_each_timer_once(store: FlowStore, redis_client: redis.Redis) -> None:
    flows = [new_flow(store, timeout=0) for _ in range(300)]
    for flow_id in flows:
        store.claim(flow_id, 0, 1, 30)
        store.accepted(flow_id, 0, "p1", "m", 0)
        store.later(NOTIFY_TERMINAL, [flow_id, 2], 0)
    tasks = RecordingTasks()
    start = threading.Barrier(6)

    def loop() -> Counter[str]:
        # each with its own connection, as each worker process has
        where = redis_client.connection_pool.connection_kwargs
        own = FlowStore(
            redis.Redis(where["host"], where["port"], where["db"]), TEST_KEYRING, 600, 5
        )
        mine = TimerLoop(own, tasks, poll_seconds=0.01, batch=7)
        total: Counter[str] = Counter()
        start.wait()
        for _ in range(200):
            done, _ = mine.run_once()
            total += done
        return total

    results: list[Counter[str]] = []
    threads = [threading.Thread(target=lambda: results.append(loop())) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sum(results, Counter()) == Counter({"switched": 300, "published": 300})
    assert sum(1 for r in results if r) > 1, "the timers must have been shared"
    sends = Counter(args for kind, args, _ in tasks.calls if kind == "send")
    assert sends == {(1, 1, 0): 300}
    assert len([c for c in tasks.calls if c[0] == "notify_terminal"]) == 300
    for flow_id in flows:
        view = store.get(flow_id)
        assert view is not None
        assert [e["type"] for e in view.events].count("channel_switch") == 1


@pytest.mark.parametrize(
    ("next_due_in", "poll", "expected"),
    [
        (None, 0.05, 0.05),  # nothing waiting: look again after the poll interval
        (0.02, 0.05, 0.02),  # due sooner than the poll: wake up for it
        (30.0, 0.05, 0.05),  # due later: a new timer may be written meanwhile
        (0.0, 0.05, 0.0),
    ],
)
def test_the_loop_sleeps_until_the_next_timer_or_the_poll(
    next_due_in: float | None, poll: float, expected: float
) -> None:
    assert timers.pause(next_due_in, poll) == expected


def test_a_full_batch_means_look_again_at_once(store: FlowStore, redis_client: redis.Redis) -> None:
    for _ in range(3):
        store.later(NOTIFY_TERMINAL, ["f", 2], 0)  # identical members collapse into one
    for index in range(3):
        store.later(NOTIFY_TERMINAL, [f"f{index}", 2], 0)
    loop = TimerLoop(store, RecordingTasks(), poll_seconds=0.5, batch=2)
    assert loop.run_once()[1] == 0.0
    assert loop.run_once()[1] == 0.0
    assert loop.run_once()[1] == 0.5
