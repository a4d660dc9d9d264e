"""The store's transitions on a real Redis: each one happens once, whoever asks twice."""

from __future__ import annotations

import ast
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import redis

from otpflow.config.settings import Limits
from otpflow.flow import keys, metrics
from otpflow.flow.metrics import Metrics
from otpflow.flow.models import FlowRequest
from otpflow.flow.outcomes import FlowDiscarded, Outcome
from otpflow.flow.states import DlrStatus
from otpflow.flow.store import MAX_KEPT_REPORTS_PER_STEP, MAX_REPORTS_PER_STEP, FlowStore

from fakes import TEST_KEYRING
from harness import sms_step, whatsapp_step

LIMITS = Limits()


def sms(timeout: int = 30) -> dict:
    return sms_step("919876543210", timeout)


def whatsapp(timeout: int = 30) -> dict:
    return whatsapp_step("919876543210", timeout)


@pytest.fixture
def store(redis_client: redis.Redis) -> FlowStore:
    return FlowStore(redis_client, TEST_KEYRING, ttl_seconds=600)


def new_flow(store: FlowStore, *steps: dict) -> str:
    flow_id = store.create("ws", FlowRequest.parse({"messages": list(steps)}))
    store.mark_enqueued(flow_id)
    return flow_id


def sent(store: FlowStore, flow_id: str, step: int, timeout: int) -> None:
    assert store.claim(flow_id, step, 1, 30).kind == "claimed"
    assert store.accepted(flow_id, step, "zixflow", f"m{step}", timeout).kind == "sent"


def test_create_sets_ttl_on_every_key(store: FlowStore, redis_client: redis.Redis) -> None:
    flow_id = store.create("ws", FlowRequest.parse({"messages": [sms(), whatsapp()]}))
    for key in [keys.flow(flow_id), keys.request(flow_id), keys.events(flow_id), keys.timers()]:
        assert 0 < redis_client.ttl(key) <= 600, key
    view = store.get(flow_id)
    assert view is not None and view.status == "queued"
    assert [s.status for s in view.steps] == ["pending", "pending"]


def test_claim_is_granted_once_under_concurrency(store: FlowStore) -> None:
    flow_id = new_flow(store, sms())
    with ThreadPoolExecutor(8) as pool:
        kinds = list(pool.map(lambda _: store.claim(flow_id, 0, 1, 30).kind, range(16)))
    assert kinds.count("claimed") == 1
    assert kinds.count("already_claimed") == 15
    view = store.get(flow_id)
    assert view is not None and view.status == "in_progress" and view.steps[0].status == "sending"


def test_retry_attempts_claim_in_order_only(store: FlowStore) -> None:
    flow_id = new_flow(store, sms())
    assert store.claim(flow_id, 0, 1, 30).kind == "claimed"
    assert store.claim(flow_id, 0, 3, 30).kind == "already_claimed"
    assert store.claim(flow_id, 0, 2, 30).kind == "claimed"
    assert store.claim(flow_id, 0, 2, 30).kind == "already_claimed"


def test_only_the_current_step_can_be_claimed(store: FlowStore) -> None:
    flow_id = new_flow(store, sms(), whatsapp())
    assert store.claim(flow_id, 1, 1, 30).kind == "not_current"


def test_check_before_deadline_is_not_due(store: FlowStore) -> None:
    flow_id = new_flow(store, sms(30), whatsapp())
    sent(store, flow_id, 0, 30)
    outcome = store.check(flow_id, 0)
    assert outcome.kind == "not_due"
    assert 29 < outcome.number <= 30


def test_concurrent_checks_switch_once(store: FlowStore) -> None:
    flow_id = new_flow(store, sms(0), whatsapp())
    sent(store, flow_id, 0, 0)
    with ThreadPoolExecutor(8) as pool:
        kinds = list(pool.map(lambda _: store.check(flow_id, 0).kind, range(16)))
    assert kinds.count("switched") == 1
    assert set(kinds) == {"switched", "moved_on"}
    view = store.get(flow_id)
    assert view is not None
    assert view.current == 1 and view.steps[0].status == "timeout"
    assert [e["type"] for e in view.events].count("channel_switch") == 1


def test_last_step_timeout_fails_the_flow(store: FlowStore, redis_client: redis.Redis) -> None:
    flow_id = new_flow(store, sms(0))
    sent(store, flow_id, 0, 0)
    assert store.check(flow_id, 0).kind == "exhausted"
    view = store.get(flow_id)
    assert view is not None and view.status == "failed" and view.reason == "timeout"
    assert redis_client.zscore(keys.timers(), f"{flow_id}:0") is None


def test_delivered_dlr_ends_the_flow_and_skips_later_steps(store: FlowStore) -> None:
    flow_id = new_flow(store, sms(), whatsapp())
    sent(store, flow_id, 0, 30)
    assert store.record_dlr(flow_id, 0, DlrStatus.DELIVERED, "zixflow").kind == "delivered"
    assert store.record_dlr(flow_id, 0, DlrStatus.DELIVERED, "zixflow").kind == "duplicate"
    assert store.check(flow_id, 0).kind == "flow_ended"
    assert store.claim(flow_id, 1, 1, 30).kind == "flow_ended"
    view = store.get(flow_id)
    assert view is not None
    assert view.status == "delivered" and view.delivered_step == 0
    assert [s.status for s in view.steps] == ["delivered", "skipped"]


def test_failed_dlr_switches_at_once_and_once(store: FlowStore, redis_client: redis.Redis) -> None:
    flow_id = new_flow(store, sms(), whatsapp())
    sent(store, flow_id, 0, 30)
    outcomes = [store.record_dlr(flow_id, 0, DlrStatus.UNDELIVERED, "zixflow") for _ in range(5)]
    assert [o.kind for o in outcomes] == ["switched"] + ["duplicate"] * 4
    assert outcomes[0].detail == "1"
    assert store.check(flow_id, 0).kind == "moved_on"
    view = store.get(flow_id)
    assert view is not None and view.current == 1 and view.steps[0].status == "failed"
    assert view.steps[0].reason is None
    # step 0's timer is gone; step 1's waits for its send to be claimed
    assert redis_client.zscore(keys.timers(), f"{flow_id}:0") is None
    assert redis_client.zscore(keys.timers(), f"{flow_id}:1") is not None


def test_late_delivered_dlr_is_recorded_and_never_reopens(store: FlowStore) -> None:
    flow_id = new_flow(store, sms(0), whatsapp())
    sent(store, flow_id, 0, 0)
    assert store.check(flow_id, 0).kind == "switched"
    sent(store, flow_id, 1, 30)
    assert store.record_dlr(flow_id, 1, DlrStatus.FAILED, "zixflow").kind == "exhausted"
    assert store.record_dlr(flow_id, 0, DlrStatus.DELIVERED, "zixflow").kind == "late"
    view = store.get(flow_id)
    assert view is not None
    assert view.status == "failed"
    assert view.steps[0].status == "timeout" and view.steps[0].dlr == "delivered"


def test_late_delivered_dlr_ends_a_running_flow(store: FlowStore) -> None:
    flow_id = new_flow(store, sms(0), whatsapp(), sms())
    sent(store, flow_id, 0, 0)
    store.check(flow_id, 0)
    sent(store, flow_id, 1, 30)
    outcome = store.record_dlr(flow_id, 0, DlrStatus.DELIVERED, "zixflow")
    assert (outcome.kind, outcome.detail) == ("delivered", "late")
    assert store.check(flow_id, 1).kind == "flow_ended"
    view = store.get(flow_id)
    assert view is not None and view.status == "delivered" and view.delivered_step == 0
    assert view.steps[2].status == "skipped"


def test_dlr_overtaking_the_acceptance(store: FlowStore) -> None:
    flow_id = new_flow(store, sms(), whatsapp())
    store.claim(flow_id, 0, 1, 30)
    assert store.record_dlr(flow_id, 0, DlrStatus.DELIVERED, "zixflow").kind == "delivered"
    assert store.accepted(flow_id, 0, "zixflow", "m0", 30).kind == "ignored"
    view = store.get(flow_id)
    assert view is not None and view.status == "delivered" and view.steps[0].message_id == "m0"


def test_send_lease_expiry_moves_on_without_resending(store: FlowStore) -> None:
    flow_id = new_flow(store, sms(), whatsapp())
    assert store.claim(flow_id, 0, 1, 0.05).kind == "claimed"
    time.sleep(0.1)
    assert store.check(flow_id, 0).kind == "switched"
    assert store.claim(flow_id, 0, 2, 30).kind == "not_current"
    view = store.get(flow_id)
    assert view is not None and view.steps[0].status == "error"
    assert view.steps[0].reason == "send_lease_expired"


def test_send_error_switches_at_once(store: FlowStore) -> None:
    flow_id = new_flow(store, sms(), whatsapp())
    store.claim(flow_id, 0, 1, 30)
    outcome = store.send_error(flow_id, 0, "zixflow", "rejected (400)")
    assert (outcome.kind, outcome.detail) == ("switched", "1")
    assert store.send_error(flow_id, 0, "zixflow", "rejected (400)").kind == "ignored"
    assert store.check(flow_id, 0).kind == "moved_on"
    last = new_flow(store, sms())
    store.claim(last, 0, 1, 30)
    assert store.send_error(last, 0, "zixflow", "rejected (400)").kind == "exhausted"


def test_cancel_skips_pending_steps(store: FlowStore) -> None:
    flow_id = new_flow(store, sms(), whatsapp())
    sent(store, flow_id, 0, 30)
    assert store.cancel(flow_id).kind == "cancelled"
    assert store.cancel(flow_id).kind == "ignored"
    assert store.claim(flow_id, 1, 1, 30).kind == "flow_ended"


def test_transitions_on_an_unknown_flow_create_nothing(
    store: FlowStore, redis_client: redis.Redis
) -> None:
    assert store.record_dlr("nope", 0, DlrStatus.DELIVERED, "zixflow").kind == "missing"
    assert store.check("nope", 0).kind == "missing"
    assert redis_client.keys("*") == []


def test_delete_removes_everything(store: FlowStore, redis_client: redis.Redis) -> None:
    flow_id = new_flow(store, sms())
    store.delete(flow_id)
    # only the shared counters stay (the flow was counted as started)
    assert redis_client.keys("*") == [keys.metrics().encode()]


def test_no_step_is_claimed_before_the_producer_marks_the_flow(store: FlowStore) -> None:
    flow_id = store.create("ws", FlowRequest.parse({"messages": [sms()]}))
    assert store.claim(flow_id, 0, 1, 30).kind == "not_enqueued"
    assert store.wait_confirmed(flow_id, 0.01) is False  # nobody confirmed yet
    # the confirmation wakes the send that came first, which then takes the step
    assert store.mark_enqueued(flow_id) is False  # so the producer publishes nothing again
    assert store.wait_confirmed(flow_id, 5) is True
    assert store.claim(flow_id, 0, 1, 30, waited=True).kind == "claimed"


def test_a_send_that_waited_in_vain_is_published_again_by_the_confirmation(
    store: FlowStore,
) -> None:
    flow_id = store.create("ws", FlowRequest.parse({"messages": [sms()]}))
    assert store.claim(flow_id, 0, 1, 30).kind == "not_enqueued"
    assert store.claim(flow_id, 0, 1, 30, waited=True).kind == "not_enqueued"  # it leaves
    assert store.mark_enqueued(flow_id) is True  # so the producer publishes it again
    assert store.claim(flow_id, 0, 1, 30).kind == "claimed"


def test_a_flow_confirmed_before_its_first_claim_needs_no_second_send(store: FlowStore) -> None:
    flow_id = store.create("ws", FlowRequest.parse({"messages": [sms()]}))
    assert store.mark_enqueued(flow_id) is False
    assert store.claim(flow_id, 0, 1, 30).kind == "claimed"


def redis_now(redis_client: redis.Redis) -> float:
    seconds, micros = redis_client.time()
    return seconds + micros / 1_000_000


def due_now(store: FlowStore, redis_client: redis.Redis) -> None:
    """Make every timer due now (as if its time had come)."""
    for member, _ in redis_client.zrange(keys.timers(), 0, -1, withscores=True):
        redis_client.zadd(keys.timers(), {member: 0})


def test_take_due_leases_due_timers_to_one_taker(
    store: FlowStore, redis_client: redis.Redis
) -> None:
    first = new_flow(store, sms())
    second = new_flow(store, sms())
    taken, next_in = store.take_due(limit=10, lease_seconds=60)
    assert taken == [] and next_in is not None and 0 < next_in <= store.grace_seconds
    due_now(store, redis_client)
    taken, _ = store.take_due(limit=10, lease_seconds=60)
    assert sorted((t.flow_id, t.step) for t in taken) == sorted([(first, 0), (second, 0)])
    # leased: a second take right after finds nothing, and the next is due in about a lease
    taken, next_in = store.take_due(limit=10, lease_seconds=60)
    assert taken == [] and next_in is not None and 59 < next_in <= 60


def test_take_due_with_nothing_waiting(store: FlowStore) -> None:
    assert store.take_due(limit=10, lease_seconds=5) == ([], None)


def test_timers_are_due_by_redis_time_not_the_callers_clock(
    store: FlowStore, redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a host clock an hour fast must neither fire a timer early nor write one late
    real = time.time
    monkeypatch.setattr(time, "time", lambda: real() + 3600)
    flow_id = new_flow(store, sms(30))
    sent(store, flow_id, 0, 30)
    store.later("otpflow.notify_terminal", [flow_id, 2], 30)
    assert store.take_due(limit=10, lease_seconds=5)[0] == []
    now = redis_now(redis_client)
    for _, score in redis_client.zrange(keys.timers(), 0, -1, withscores=True):
        assert now + 29 < score <= now + 31


def test_a_task_due_later_is_taken_when_due(store: FlowStore, redis_client: redis.Redis) -> None:
    store.later("otpflow.notify_terminal", ["f-1", 2], 0.05)
    assert store.take_due(limit=10, lease_seconds=5)[0] == []
    time.sleep(0.1)
    (timer,), _ = store.take_due(limit=10, lease_seconds=5)
    assert (timer.task, timer.args) == ("otpflow.notify_terminal", ("f-1", 2))
    store.timer_done(timer)
    assert redis_client.zcard(keys.timers()) == 0


def overtaken(redis_client: redis.Redis) -> None:
    """As if a send queued long after every flow here had been claimed already."""
    redis_client.set(keys.claimed_through(), redis_now(redis_client) + 3600)


def test_check_decides_per_step_state(store: FlowStore, redis_client: redis.Redis) -> None:
    pending = new_flow(store, sms(0), whatsapp())
    assert store.check(pending, 0).kind == "queued"  # its turn has not come
    overtaken(redis_client)
    assert store.check(pending, 0).kind == "resend"
    sent(store, pending, 0, 0)
    assert store.check(pending, 1).kind == "moved_on"
    assert store.check(pending, 0).kind == "switched"
    store.record_dlr(pending, 0, DlrStatus.DELIVERED, "zixflow")
    assert store.check(pending, 0).kind == "flow_ended"
    assert store.check("gone", 0).kind == "missing"


def test_each_resend_of_a_step_waits_twice_as_long(
    store: FlowStore, redis_client: redis.Redis
) -> None:
    store = FlowStore(redis_client, TEST_KEYRING, ttl_seconds=600, grace_seconds=5)
    flow_id = new_flow(store, sms())
    overtaken(redis_client)
    waits = []
    for expected in ("1", "2", "3", "4", "5", "6"):
        before = redis_now(redis_client)
        outcome = store.check(flow_id, 0)
        assert (outcome.kind, outcome.detail) == ("resend", expected)
        score = redis_client.zscore(keys.timers(), f"{flow_id}:0")
        assert score is not None
        waits.append(round(score - before))
    # a backlog gets a few duplicates per step, never one per look
    assert waits == [5, 10, 20, 40, 80, 120]
    assert store.take_due(limit=10, lease_seconds=60)[0] == []


def test_a_send_waiting_its_turn_is_not_sent_again_until_overtaken(
    store: FlowStore, redis_client: redis.Redis
) -> None:
    """A backlog on the send queue: a step unclaimed for a grace period is only waiting, as
    long as no send queued after it has been claimed; once one is, its send was lost."""
    store = FlowStore(redis_client, TEST_KEYRING, ttl_seconds=600, grace_seconds=0.2)
    waiting = new_flow(store, sms())
    assert store.check(waiting, 0).kind == "queued"
    later = new_flow(store, sms())
    assert store.claim(later, 0, 1, 30).kind == "claimed"  # queued less than a grace after
    assert store.check(waiting, 0).kind == "queued"
    time.sleep(0.25)
    much_later = new_flow(store, sms())
    assert store.claim(much_later, 0, 1, 30).kind == "claimed"
    assert store.check(waiting, 0).kind == "resend"


def test_a_send_waiting_longer_than_the_cap_is_sent_again(
    store: FlowStore, redis_client: redis.Redis
) -> None:
    """Nothing overtakes a lost last send: past the cap it is sent again all the same."""
    flow_id = new_flow(store, sms())
    redis_client.hset(keys.flow(flow_id), "s0:queued_at", redis_now(redis_client) - 121)
    assert store.check(flow_id, 0).kind == "resend"


def test_check_discards_a_flow_its_producer_never_confirmed(
    store: FlowStore, redis_client: redis.Redis
) -> None:
    flow_id = store.create("ws", FlowRequest.parse({"messages": [sms()]}))
    assert store.check(flow_id, 0).kind == "discarded"
    assert redis_client.keys("otpflow:flow:*") == []
    assert redis_client.zcard(keys.timers()) == 0


def test_a_timer_taken_early_gets_its_real_due_time_back(
    store: FlowStore, redis_client: redis.Redis
) -> None:
    flow_id = new_flow(store, sms(30))
    sent(store, flow_id, 0, 30)
    due_now(store, redis_client)
    store.take_due(limit=10, lease_seconds=5)  # leased for 5 s only
    assert store.check(flow_id, 0).kind == "not_due"
    view = store.get(flow_id)
    assert view is not None
    assert redis_client.zscore(keys.timers(), f"{flow_id}:0") == pytest.approx(
        view.steps[0].deadline
    )


def test_timers_follow_the_step(store: FlowStore, redis_client: redis.Redis) -> None:
    """Written by the transition that makes them necessary, removed by the one that ends
    the step: claim (send lease), accepted (DLR timeout), switch (next step's grace)."""
    flow_id = new_flow(store, sms(30), whatsapp())

    def timer(step: int) -> float | None:
        return redis_client.zscore(keys.timers(), f"{flow_id}:{step}")

    now = redis_now(redis_client)
    assert now < (timer(0) or 0) <= now + store.grace_seconds + 1
    store.claim(flow_id, 0, 1, 40)
    assert now + 39 < (timer(0) or 0) <= now + 41
    store.accepted(flow_id, 0, "zixflow", "m0", 30)
    assert now + 29 < (timer(0) or 0) <= now + 31
    store.record_dlr(flow_id, 0, DlrStatus.FAILED, "zixflow")
    assert timer(0) is None
    assert now < (timer(1) or 0) <= now + store.grace_seconds + 1
    sent(store, flow_id, 1, 30)
    store.record_dlr(flow_id, 1, DlrStatus.DELIVERED, "zixflow")
    assert redis_client.zcard(keys.timers()) == 0


def test_report_for_a_step_never_sent_changes_nothing(store: FlowStore) -> None:
    flow_id = new_flow(store, sms(), whatsapp())
    sent(store, flow_id, 0, 30)
    assert store.record_dlr(flow_id, 1, DlrStatus.DELIVERED, "zixflow").kind == "ignored"
    assert store.record_dlr(flow_id, 7, DlrStatus.DELIVERED, "zixflow").kind == "ignored"
    view = store.get(flow_id)
    assert view is not None and view.status == "in_progress"
    assert view.steps[1].dlr is None


def test_reports_are_kept_only_for_steps_that_relay(store: FlowStore) -> None:
    relaying = sms()
    relaying["data"] = relaying["data"] | {"post_back_url": "https://caller.example/dlr"}
    flow_id = new_flow(store, relaying, whatsapp(), sms())
    sent(store, flow_id, 0, 30)

    def kept(step: int, status: DlrStatus, message_id: str = "m0") -> int | None:
        body = {"status": status.value, "id": message_id}
        return store.record_dlr(flow_id, step, status, "zixflow", message_id, raw=body).kept

    assert kept(0, DlrStatus.SENT) == 0
    assert kept(0, DlrStatus.SENT) == 1  # a duplicate is relayed too
    assert store.record_dlr(flow_id, 0, DlrStatus.SENT, "zixflow", "m1").kept is None  # no raw
    assert kept(0, DlrStatus.FAILED) == 2  # the switch to step 1
    assert store.report(flow_id, 2) == {
        "provider": "zixflow",
        "status": "failed",
        "body": {"status": "failed", "id": "m0"},
    }
    sent(store, flow_id, 1, 30)
    assert kept(1, DlrStatus.SENT) is None  # step 1 gave no post_back_url
    assert kept(2, DlrStatus.SENT) is None  # step 2 never sent: its reports are ignored
    for index in range(200):
        kept(0, DlrStatus.SENT, f"m{index}")
    # bounded per step: a callback token cannot make the store keep more
    assert store.redis.llen(keys.reports(flow_id)) == MAX_KEPT_REPORTS_PER_STEP
    assert 0 < store.redis.ttl(keys.reports(flow_id)) <= 600
    assert store.record_dlr("no-such-flow", 0, DlrStatus.SENT, "zixflow", raw={}).kind == "missing"


def right_code(store: FlowStore, flow_id: str) -> str:
    return store.keyring.code(flow_id, 6)


def wrong_code(store: FlowStore, flow_id: str) -> str:
    return "000000" if right_code(store, flow_id) != "000000" else "111111"


def otp_flow(store: FlowStore, attempts: int = 3) -> str:
    step = sms() | {"data": sms()["data"] | {"message": "Code {{code}}"}}
    fallback = whatsapp() | {"data": whatsapp()["data"] | {"text": "Code {{code}}"}}
    otp = {"length": 6, "ttl": 60, "max_attempts": attempts}
    request = FlowRequest.parse({"messages": [step, fallback], "otp": otp})
    flow_id = store.create("ws", request)
    store.mark_enqueued(flow_id)
    return flow_id


def test_verify_counts_attempts_and_ends_the_flow(store: FlowStore) -> None:
    flow_id = otp_flow(store)
    sent(store, flow_id, 0, 30)
    assert (
        store.verify(flow_id, wrong_code(store, flow_id), LIMITS).kind,
        store.verify(flow_id, wrong_code(store, flow_id), LIMITS).detail,
    ) == (
        "wrong",
        "1",
    )
    assert store.verify(flow_id, right_code(store, flow_id), LIMITS).kind == "verified"
    assert store.verify(flow_id, right_code(store, flow_id), LIMITS).kind == "already_verified"
    view = store.get(flow_id)
    assert view is not None and view.status == "verified"
    assert [s.status for s in view.steps] == ["sent", "skipped"]
    assert store.redis.exists(keys.code(flow_id)) == 0


def test_wrong_codes_lock_and_fail_a_running_flow(store: FlowStore) -> None:
    flow_id = otp_flow(store, attempts=2)
    sent(store, flow_id, 0, 30)
    assert [store.verify(flow_id, wrong_code(store, flow_id), LIMITS).kind for _ in range(2)] == [
        "wrong",
        "locked",
    ]
    assert store.verify(flow_id, right_code(store, flow_id), LIMITS).kind == "locked"
    view = store.get(flow_id)
    assert view is not None and view.status == "failed" and view.reason == "verification_locked"
    assert store.claim(flow_id, 1, 1, 30).kind == "flow_ended"


def test_an_expired_code_cannot_be_verified(store: FlowStore, redis_client: redis.Redis) -> None:
    flow_id = otp_flow(store)
    redis_client.delete(keys.code(flow_id))  # what its ttl does
    assert store.verify(flow_id, right_code(store, flow_id), LIMITS).kind == "expired"


def test_a_delivered_flow_can_still_be_verified(store: FlowStore) -> None:
    flow_id = otp_flow(store)
    sent(store, flow_id, 0, 30)
    store.record_dlr(flow_id, 0, DlrStatus.DELIVERED, "zixflow")
    assert store.redis.exists(keys.code(flow_id)) == 1
    assert store.verify(flow_id, right_code(store, flow_id), LIMITS).kind == "verified"


# Transitions count themselves (flow.metrics): once per transition, whoever races.


def counters(redis_client: redis.Redis) -> dict[str, float]:
    return Metrics(redis_client).read()


def test_the_processes_count_through_the_store() -> None:
    # every Redis write is the store's: a process adds to the counters through
    # FlowStore.metrics, never with a Metrics of its own
    root = Path(keys.__file__).parents[1]
    for folder in ("api", "worker", "producers", "cli"):
        for path in (root / folder).rglob("*.py"):
            calls = (n for n in ast.walk(ast.parse(path.read_text())) if isinstance(n, ast.Call))
            built = [call.lineno for call in calls if ast.unparse(call.func).endswith("Metrics")]
            assert not built, f"{path}:{built} builds a Metrics writer outside the store"


def latency_observations(values: dict[str, float], **labels: str) -> float:
    prefix = metrics.field("dlr_latency_seconds", **labels) + "|le="
    return sum(v for k, v in values.items() if k.startswith(prefix))


def test_a_switch_and_a_delivery_are_counted_once(
    store: FlowStore, redis_client: redis.Redis
) -> None:
    flow_id = new_flow(store, sms(), whatsapp())
    sent(store, flow_id, 0, 30)
    assert store.record_dlr(flow_id, 0, DlrStatus.UNDELIVERED, "zixflow").kind == "switched"
    assert store.record_dlr(flow_id, 0, DlrStatus.UNDELIVERED, "zixflow").kind == "duplicate"
    assert store.check(flow_id, 0).kind == "moved_on"
    sent(store, flow_id, 1, 30)
    with ThreadPoolExecutor(8) as pool:
        kinds = list(
            pool.map(
                lambda _: store.record_dlr(flow_id, 1, DlrStatus.DELIVERED, "zixflow").kind,
                range(16),
            )
        )
    assert kinds.count("delivered") == 1
    values = counters(redis_client)
    assert values[metrics.field("flows_started")] == 1
    assert values[metrics.field("flows_ended", outcome="delivered")] == 1
    switch = metrics.field(
        "channel_switches", from_channel="sms", to_channel="whatsapp", reason="dlr_undelivered"
    )
    assert values[switch] == 1
    sms_failed = {"channel": "sms", "provider": "zixflow", "outcome": "failed"}
    wa_delivered = {"channel": "whatsapp", "provider": "zixflow", "outcome": "delivered"}
    assert latency_observations(values, **sms_failed) == 1
    assert latency_observations(values, **wa_delivered) == 1
    whatsapp_step = store.get(flow_id).steps[1]  # type: ignore[union-attr]
    assert whatsapp_step.dlr_at is not None and whatsapp_step.accepted_at is not None
    assert values[metrics.field("dlr_latency_seconds_sum", **wa_delivered)] == pytest.approx(
        whatsapp_step.dlr_at - whatsapp_step.accepted_at
    )


def test_a_timed_out_flow_counts_its_switch_its_failure_and_one_late_report(
    store: FlowStore, redis_client: redis.Redis
) -> None:
    flow_id = new_flow(store, sms(0), whatsapp(0))
    sent(store, flow_id, 0, 0)
    assert store.check(flow_id, 0).kind == "switched"
    sent(store, flow_id, 1, 0)
    assert store.check(flow_id, 1).kind == "exhausted"
    assert store.record_dlr(flow_id, 0, DlrStatus.DELIVERED, "zixflow").kind == "late"
    assert store.record_dlr(flow_id, 0, DlrStatus.FAILED, "zixflow").kind == "late"
    values = counters(redis_client)
    assert values[metrics.field("flows_ended", outcome="failed")] == 1
    assert metrics.field("flows_ended", outcome="delivered") not in values
    timeout = metrics.field(
        "channel_switches", from_channel="sms", to_channel="whatsapp", reason="timeout"
    )
    assert values[timeout] == 1
    # the first final report of a step is its latency, even late; the second is not
    late = {"channel": "sms", "provider": "zixflow", "outcome": "delivered"}
    assert latency_observations(values, **late) == 1
    assert latency_observations(values, channel="sms", provider="zixflow", outcome="failed") == 0


def test_delivered_then_verified_is_one_ended_flow(
    store: FlowStore, redis_client: redis.Redis
) -> None:
    flow_id = otp_flow(store)
    sent(store, flow_id, 0, 30)
    assert store.record_dlr(flow_id, 0, DlrStatus.DELIVERED, "zixflow").kind == "delivered"
    assert store.verify(flow_id, wrong_code(store, flow_id), LIMITS).kind == "wrong"
    assert store.verify(flow_id, right_code(store, flow_id), LIMITS).kind == "verified"
    assert store.cancel(flow_id).kind == "ignored"
    values = counters(redis_client)
    assert values[metrics.field("flows_ended", outcome="delivered")] == 1
    assert metrics.field("flows_ended", outcome="verified") not in values
    assert values[metrics.field("verifications", result="wrong_code")] == 1
    assert values[metrics.field("verifications", result="verified")] == 1


def test_every_counted_field_has_its_metrics_declared_labels(
    store: FlowStore, redis_client: redis.Redis
) -> None:
    delivered, timed_out, cancelled = (new_flow(store, sms(0), whatsapp()) for _ in range(3))
    sent(store, delivered, 0, 30)
    store.record_dlr(delivered, 0, DlrStatus.DELIVERED, "zixflow")
    sent(store, timed_out, 0, 0)
    store.check(timed_out, 0)
    store.cancel(cancelled)
    locked = otp_flow(store, attempts=1)
    store.verify(locked, wrong_code(store, locked), LIMITS)
    values = counters(redis_client)
    assert len(values) >= 8
    for raw in values:
        name, labels = metrics.parse_field(raw)
        spec = metrics.METRICS[name.removesuffix("_sum")]
        expected = list(spec.labels) + (
            ["le"] if spec.kind == "histogram" and name == name.removesuffix("_sum") else []
        )
        assert list(labels) == expected, raw
    assert values[metrics.field("flows_ended", outcome="cancelled")] == 1
    assert values[metrics.field("flows_ended", outcome="failed")] == 1
    assert values[metrics.field("verifications", result="locked")] == 1
    assert 0 < redis_client.ttl(keys.metrics()) <= metrics.METRICS_TTL_SECONDS


def test_a_confirmation_after_the_flow_was_discarded_leaves_nothing_behind(
    store: FlowStore, redis_client: redis.Redis
) -> None:
    flow_id = store.create("ws", FlowRequest.parse({"messages": [sms()]}))
    assert store.check(flow_id, 0).kind == "discarded"  # its grace ran out unconfirmed
    with pytest.raises(FlowDiscarded):
        store.mark_enqueued(flow_id, (keys.idempotency("ws", "k"), "digest id", 60))
    # no stub hash without a TTL, no idempotency record saying "accepted"
    assert redis_client.keys("otpflow:flow:*") == []
    assert redis_client.exists(keys.idempotency("ws", "k")) == 0


def test_a_discarded_flow_frees_its_recipients(store: FlowStore, redis_client: redis.Redis) -> None:
    marker = keys.active("ws", "919876543210")
    flow_id = store.create("ws", FlowRequest.parse({"messages": [sms()]}), active_keys=(marker,))
    redis_client.set(marker, flow_id)
    assert store.check(flow_id, 0).kind == "discarded"
    assert redis_client.exists(marker) == 0


def test_flow_times_are_redis_time_not_the_producers_clock(
    store: FlowStore, redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(time, "time", lambda: 1_000.0)  # a producer whose clock is far off
    flow_id = store.create("ws", FlowRequest.parse({"messages": [sms()]}))
    store.add_event(flow_id, {"type": "webhook", "result": "delivered"})
    monkeypatch.undo()
    seconds, micros = redis_client.time()
    view = store.get(flow_id)
    assert view is not None
    assert abs(view.created_at - (seconds + micros / 1e6)) < 5
    assert all(abs(event["ts"] - view.created_at) < 5 for event in view.events)


def test_an_event_for_a_flow_that_is_gone_writes_nothing(
    store: FlowStore, redis_client: redis.Redis
) -> None:
    store.add_event("no-such-flow", {"type": "webhook", "result": "delivered"})
    assert redis_client.keys("*") == []


def test_replayed_reports_alternating_do_not_grow_the_timeline(store: FlowStore) -> None:
    flow_id = new_flow(store, sms())
    sent(store, flow_id, 0, 30)
    for index in range(300):
        status = DlrStatus.ACCEPTED if index % 2 else DlrStatus.SENT
        store.record_dlr(flow_id, 0, status, "zixflow", "m0")
    view = store.get(flow_id)
    assert view is not None
    assert [event["status"] for event in view.events if event["type"] == "dlr"] == [
        "sent",
        "accepted",
    ]


def test_a_step_records_a_bounded_number_of_reports(store: FlowStore) -> None:
    flow_id = new_flow(store, sms())
    sent(store, flow_id, 0, 30)
    outcomes = [
        store.record_dlr(flow_id, 0, DlrStatus.SENT, "zixflow", f"invented-{index}").kind
        for index in range(MAX_REPORTS_PER_STEP + 20)
    ]
    assert outcomes.count("recorded") == MAX_REPORTS_PER_STEP
    assert set(outcomes[MAX_REPORTS_PER_STEP:]) == {"too_many"}
    view = store.get(flow_id)
    assert view is not None
    assert len(view.events) <= MAX_REPORTS_PER_STEP + 3


def test_the_same_status_of_another_provider_message_is_not_a_duplicate(store: FlowStore) -> None:
    flow_id = new_flow(store, sms())
    sent(store, flow_id, 0, 30)
    assert store.record_dlr(flow_id, 0, DlrStatus.SENT, "zixflow", "m0").kind == "recorded"
    assert store.record_dlr(flow_id, 0, DlrStatus.SENT, "zixflow", "m0").kind == "duplicate"
    assert store.record_dlr(flow_id, 0, DlrStatus.SENT, "zixflow", "m1").kind == "recorded"


def budgeted_flow(store: FlowStore, address: str = "919876543210") -> str:
    step = sms() | {"data": sms()["data"] | {"message": "Code {{code}}"}}
    request = FlowRequest.parse({"messages": [step], "otp": {"max_attempts": 10}})
    budget = store.verify_budget_keys("ws", {address})
    flow_id = store.create("ws", request, verify_budget_keys=budget)
    store.mark_enqueued(flow_id)
    return flow_id


def test_wrong_codes_across_flows_spend_one_budget_per_recipient(
    store: FlowStore, redis_client: redis.Redis
) -> None:
    limits = Limits(verify_failures=4, verify_failure_window_seconds=3600)
    first, second = budgeted_flow(store), budgeted_flow(store)
    assert [store.verify(first, wrong_code(store, first), limits).kind for _ in range(2)] == [
        "wrong",
        "wrong",
    ]
    assert [store.verify(second, wrong_code(store, second), limits).kind for _ in range(2)] == [
        "wrong",
        "wrong",
    ]
    # the budget is spent: even the right code waits out the window, on any flow
    third = budgeted_flow(store)
    blocked = store.verify(third, right_code(store, third), limits)
    assert blocked.kind == "blocked" and 3500 < int(blocked.detail) <= 3600

    # and no new flow with a code for that recipient until then, in the same submit step
    def admit(address: str, has_code: bool = True) -> Outcome:
        data = sms()["data"] | {"recipient": address}
        if has_code:
            data["message"] = "Your code is {{code}}"
        body = {"messages": [sms() | {"data": data}], "allowConcurrent": True}
        if has_code:
            body["otp"] = {}
        request = FlowRequest.parse(body)
        return store.submit(str(uuid.uuid4()), "ws", request, {address: 1}, limits, 60)

    assert admit("919876543210") == Outcome("verify_blocked", blocked.detail)
    assert admit("919876543210", has_code=False).kind == "ok"
    assert admit("919876543211").kind == "ok"
    other = budgeted_flow(store, "919876543211")
    assert store.verify(other, right_code(store, other), limits).kind == "verified"


def test_submit_stores_the_flow_in_the_step_that_takes_its_limits(store: FlowStore) -> None:
    limits = Limits(recipient_flows=1)
    request = FlowRequest.parse({"messages": [sms()]})
    recipients = dict.fromkeys(request.messages_per_recipient(), 1)
    first, second = str(uuid.uuid4()), str(uuid.uuid4())
    assert store.submit(first, "ws", request, recipients, limits, 60).kind == "ok"
    view = store.get(first)
    assert view is not None and view.status == "queued" and view.workspace == "ws"
    # the second is refused by the running first (and the rate), and nothing of it is stored
    refused = store.submit(second, "ws", request, recipients, limits, 60)
    assert refused.kind in ("active", "rate_limited")
    assert store.get(second) is None
    assert not store.redis.exists(*keys.flow_keys(second))
    assert store.redis.zscore(keys.timers(), f"{second}:0") is None
