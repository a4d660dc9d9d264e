"""Task logic on a real Redis store, with scripted providers and a recording queue."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import pytest
import redis

from otpflow.config.settings import Settings
from otpflow.flow import keys, metrics
from otpflow.flow.keyring import Keyring
from otpflow.flow.models import FlowRequest, Step
from otpflow.flow.signing import read_dlr_token
from otpflow.flow.states import Kind
from otpflow.providers.base import Callback, DeliveryReport
from otpflow.providers.errors import (
    AmbiguousSend,
    ProviderRejected,
    ProviderUnavailable,
)
from otpflow.worker import tasks
from otpflow.worker.runtime import Runtime

from fakes import RecordingTasks
from harness import sms_step, wait_for, whatsapp_step


@dataclass
class ScriptedProvider:
    """Answers each send with the next scripted result: a message id or an exception."""

    name: str
    script: list[Any]
    channels: frozenset[str] = frozenset({"sms", "whatsapp"})
    calls: list[tuple[Step, Callback]] = field(default_factory=list)
    accepted_is_delivered: bool = False

    def send(self, step: Step, callback: Callback) -> str:
        self.calls.append((step, callback))
        result = self.script.pop(0)
        if isinstance(result, Exception):
            raise result
        return str(result)

    def parse_dlr(self, body: Any) -> list[DeliveryReport]:
        raise NotImplementedError


def runtime(redis_client: redis.Redis, routes: str, *providers: ScriptedProvider) -> Runtime:
    settings = Settings(
        routes={"sms": routes, "whatsapp": routes},
        secret="tasks-test-secret-0123456789abcdef",
        public_url="https://otp.example/",
        send_budget_seconds=20,
        # the configured order, every time (no data yet), unless a test explores
        routing={"exploration_share": 0},
    )
    rt = Runtime(settings)
    rt.__dict__["redis"] = redis_client
    rt.__dict__["providers"] = {p.name: p for p in providers}
    return rt


FLOW = {
    "messages": [
        sms_step("919876543210", timeout=7, text="Code 1"),
        whatsapp_step("919876543210", timeout=9, text="Code 1"),
    ]
}


@pytest.fixture
def enqueue() -> RecordingTasks:
    return RecordingTasks()


def start(rt: Runtime, flow: dict[str, Any] = FLOW) -> str:
    flow_id = rt.store.create("ws", FlowRequest.parse(flow))
    rt.store.mark_enqueued(flow_id)
    return flow_id


def test_accepted_send_sets_the_timer_at_the_timeout_and_enqueues_nothing(
    redis_client: redis.Redis, enqueue: RecordingTasks
) -> None:
    p1 = ScriptedProvider("p1", ["msg-1"])
    rt = runtime(redis_client, "p1", p1)
    flow_id = start(rt)
    assert tasks.send_step(rt, enqueue, flow_id, 0, 1, 0) is Kind.SENT
    assert enqueue.calls == []  # a delivered flow costs one task: this send
    seconds, micros = redis_client.time()
    due = redis_client.zscore(keys.timers(), f"{flow_id}:0")
    assert due is not None and 6 < due - (seconds + micros / 1e6) <= 7
    ((_, callback),) = p1.calls
    assert callback.url.startswith("https://otp.example/v1/dlr/p1?token=")
    assert read_dlr_token("tasks-test-secret-0123456789abcdef", "p1", callback.data) == (flow_id, 0)
    view = rt.store.get(flow_id)
    assert view is not None and view.steps[0].status == "sent"
    assert view.steps[0].message_id == "msg-1"


def test_a_second_delivery_of_the_same_task_sends_nothing(
    redis_client: redis.Redis, enqueue: RecordingTasks
) -> None:
    p1 = ScriptedProvider("p1", ["msg-1", "msg-2"])
    rt = runtime(redis_client, "p1", p1)
    flow_id = start(rt)
    tasks.send_step(rt, enqueue, flow_id, 0, 1, 0)
    assert tasks.send_step(rt, enqueue, flow_id, 0, 1, 0) is Kind.ALREADY_CLAIMED
    assert len(p1.calls) == 1


def test_transient_error_is_retried_with_backoff(
    redis_client: redis.Redis, enqueue: RecordingTasks
) -> None:
    p1 = ScriptedProvider("p1", [ProviderUnavailable("p1", "provider error (500)"), "msg-1"])
    rt = runtime(redis_client, "p1", p1)
    flow_id = start(rt)
    assert tasks.send_step(rt, enqueue, flow_id, 0, 1, 0) is Kind.RETRYING
    ((kind, args, countdown),) = enqueue.calls
    assert (kind, args) == ("send", (0, 2, 0)) and 0.25 <= countdown <= 0.5
    assert tasks.send_step(rt, enqueue, flow_id, 0, 2, 0) is Kind.SENT
    view = rt.store.get(flow_id)
    assert view is not None and view.steps[0].attempts == 2
    assert [e["type"] for e in view.events].count("attempt_failed") == 1


def test_permanent_error_fails_over_to_the_next_provider(
    redis_client: redis.Redis, enqueue: RecordingTasks
) -> None:
    p1 = ScriptedProvider("p1", [ProviderRejected("p1", "rejected (400): blocked")])
    p2 = ScriptedProvider("p2", ["msg-2"])
    rt = runtime(redis_client, "p1,p2", p1, p2)
    flow_id = start(rt)
    assert tasks.send_step(rt, enqueue, flow_id, 0, 1, 0) is Kind.FAILOVER
    assert enqueue.calls == [("send", (0, 2, 1), 0)]
    assert tasks.send_step(rt, enqueue, flow_id, 0, 2, 1) is Kind.SENT
    view = rt.store.get(flow_id)
    assert view is not None and view.steps[0].provider == "p2"


def test_last_provider_rejecting_switches_to_the_next_channel_now(
    redis_client: redis.Redis, enqueue: RecordingTasks
) -> None:
    p1 = ScriptedProvider("p1", [ProviderRejected("p1", "rejected (400): blocked")])
    rt = runtime(redis_client, "p1", p1)
    flow_id = start(rt)
    assert tasks.send_step(rt, enqueue, flow_id, 0, 1, 0) is Kind.SEND_ERROR
    assert enqueue.calls == [("send", (1, 1, 0), 0)]  # no webhook URL: nobody to notify


def test_switch_notifies_only_flows_with_a_webhook(
    redis_client: redis.Redis, enqueue: RecordingTasks
) -> None:
    rt = runtime(redis_client, "nobody")
    flow_id = start(rt, FLOW | {"webhookurl": "https://app.example/switch"})
    assert tasks.send_step(rt, enqueue, flow_id, 0, 1, 0) is Kind.NO_PROVIDER
    assert enqueue.calls == [("send", (1, 1, 0), 0), ("notify", (0, 1), 0)]
    without_webhook = start(rt)
    enqueue.calls.clear()
    tasks.send_step(rt, enqueue, without_webhook, 0, 1, 0)
    assert enqueue.calls == [("send", (1, 1, 0), 0)]


def test_retries_stop_at_the_send_budget(
    redis_client: redis.Redis, enqueue: RecordingTasks
) -> None:
    p1 = ScriptedProvider("p1", [ProviderUnavailable("p1", "cannot connect: ConnectError")])
    rt = runtime(redis_client, "p1", p1)
    rt.settings.send_budget_seconds = 0.01
    flow_id = start(rt)
    assert tasks.send_step(rt, enqueue, flow_id, 0, 1, 0) is Kind.SEND_ERROR


def test_ambiguous_send_is_never_retried(
    redis_client: redis.Redis, enqueue: RecordingTasks
) -> None:
    p1 = ScriptedProvider("p1", [AmbiguousSend("p1", "no reply: ReadTimeout"), "msg"])
    p2 = ScriptedProvider("p2", ["msg"])
    rt = runtime(redis_client, "p1,p2", p1, p2)
    flow_id = start(rt)
    assert tasks.send_step(rt, enqueue, flow_id, 0, 1, 0) is Kind.AMBIGUOUS
    assert enqueue.calls == [("send", (1, 1, 0), 0)]  # the next channel, not the next provider
    assert p2.calls == []


def test_channel_without_provider_moves_on(
    redis_client: redis.Redis, enqueue: RecordingTasks
) -> None:
    rt = runtime(redis_client, "nobody")
    flow_id = start(rt)
    assert tasks.send_step(rt, enqueue, flow_id, 0, 1, 0) is Kind.NO_PROVIDER
    view = rt.store.get(flow_id)
    assert view is not None and view.steps[0].status == "error"


def test_backoff_grows_and_honours_retry_after() -> None:
    assert 0.25 <= tasks.backoff(1) <= 0.5
    assert 2 <= tasks.backoff(4) <= 4
    assert tasks.backoff(20) <= tasks.BACKOFF_MAX_SECONDS
    assert tasks.backoff(1, retry_after=5) == 5


def test_a_send_before_the_producer_confirms_waits_for_the_confirmation_and_sends(
    redis_client: redis.Redis, enqueue: RecordingTasks
) -> None:
    p1 = ScriptedProvider("p1", ["m1"])
    rt = runtime(redis_client, "p1", p1)
    flow_id = rt.store.create("ws", FlowRequest.parse(FLOW))
    with ThreadPoolExecutor(1) as pool:
        send = pool.submit(tasks.send_step, rt, enqueue, flow_id, 0, 1, 0)
        wait_for(lambda: redis_client.hget(keys.flow(flow_id), "early") == b"waiting")
        assert rt.store.mark_enqueued(flow_id) is False  # nothing to publish again
        assert send.result(timeout=5) == "sent"
    assert len(p1.calls) == 1


def test_a_send_whose_producer_never_confirms_sends_nothing_and_leaves_it_to_the_producer(
    redis_client: redis.Redis, enqueue: RecordingTasks
) -> None:
    p1 = ScriptedProvider("p1", ["m1"])
    rt = runtime(redis_client, "p1", p1)
    flow_id = rt.store.create("ws", FlowRequest.parse(FLOW))
    assert tasks.send_step(rt, enqueue, flow_id, 0, 1, 0) is Kind.NOT_ENQUEUED  # after its wait
    assert enqueue.calls == []  # a late confirmation publishes it again
    assert p1.calls == []
    assert rt.store.mark_enqueued(flow_id) is True


def test_a_failing_provider_gets_its_attempts_then_the_next_one_takes_over(
    redis_client: redis.Redis, enqueue: RecordingTasks
) -> None:
    down = ProviderUnavailable("p1", "provider error (500)")
    p1 = ScriptedProvider("p1", [down, down, down])
    p2 = ScriptedProvider("p2", ["msg-2"])
    rt = runtime(redis_client, "p1,p2", p1, p2)
    flow_id = start(rt)
    assert tasks.send_step(rt, enqueue, flow_id, 0, 1, 0, 1) is Kind.RETRYING
    assert tasks.send_step(rt, enqueue, flow_id, 0, 2, 0, 2) is Kind.RETRYING
    assert tasks.send_step(rt, enqueue, flow_id, 0, 3, 0, 3) is Kind.FAILOVER
    assert enqueue.calls[-1] == ("send", (0, 4, 1), 0)
    assert enqueue.provider_attempts == [2, 3, 1]
    assert tasks.send_step(rt, enqueue, flow_id, 0, 4, 1, 1) is Kind.SENT
    assert len(p1.calls) == 3 and len(p2.calls) == 1


def test_a_step_keeps_the_order_its_first_attempt_chose_and_says_why(
    redis_client: redis.Redis, enqueue: RecordingTasks
) -> None:
    down = ProviderUnavailable("p1", "provider error (500)")
    p1, p2 = ScriptedProvider("p1", [down, "msg-1"]), ScriptedProvider("p2", ["msg-2"])
    rt = runtime(redis_client, "p1,p2", p1, p2)
    flow_id = start(rt)
    assert tasks.send_step(rt, enqueue, flow_id, 0, 1, 0, 1) is Kind.RETRYING
    # meanwhile the router would put p2 first for every message
    redis_client.hset(keys.routing_leaders(), "sms|IN", "p2")
    rt.router.snapshot(fresh=True)
    assert rt.router.route("sms", "IN", ["p1", "p2"]).providers[0] == "p2"
    assert tasks.send_step(rt, enqueue, flow_id, 0, 2, 0, 2) is Kind.SENT
    assert len(p1.calls) == 2 and p2.calls == []
    view = rt.store.get(flow_id)
    assert view is not None
    failed, sent = (e for e in view.events if e["type"] in ("attempt_failed", "sent"))
    assert failed["route"]["mode"] == "adaptive" and failed["route"]["rank"] == 1
    assert failed["route"]["country"] == "IN" and failed["route"]["explored"] is False
    assert sent["route"] == {"rank": 1, "kept": True}


def test_the_last_provider_keeps_trying_within_the_budget(
    redis_client: redis.Redis, enqueue: RecordingTasks
) -> None:
    p1 = ScriptedProvider("p1", [ProviderUnavailable("p1", "provider error (500)")])
    rt = runtime(redis_client, "p1", p1)
    flow_id = start(rt)
    assert tasks.send_step(rt, enqueue, flow_id, 0, 1, 0, 7) is Kind.RETRYING


def test_acceptance_that_is_final_delivers_the_step(
    redis_client: redis.Redis, enqueue: RecordingTasks
) -> None:
    mailer = ScriptedProvider("p1", ["<id@acme>"], accepted_is_delivered=True)
    rt = runtime(redis_client, "p1", mailer)
    flow_id = start(rt)
    assert tasks.send_step(rt, enqueue, flow_id, 0, 1, 0) is Kind.DELIVERED
    assert enqueue.calls == []  # nothing left to wait for
    view = rt.store.get(flow_id)
    assert view is not None and view.status == "delivered" and view.steps[0].status == "delivered"


def test_provider_sends_are_counted_by_what_the_provider_answered(
    redis_client: redis.Redis, enqueue: RecordingTasks
) -> None:
    p1 = ScriptedProvider("p1", [ProviderUnavailable("p1", "500"), ProviderRejected("p1", "no")])
    p2 = ScriptedProvider("p2", ["msg-2", AmbiguousSend("p2", "read timeout")])
    rt = runtime(redis_client, "p1,p2", p1, p2)
    flow_id = start(rt)
    assert tasks.send_step(rt, enqueue, flow_id, 0, 1, 0) is Kind.RETRYING
    assert tasks.send_step(rt, enqueue, flow_id, 0, 2, 0, 2) is Kind.FAILOVER
    assert tasks.send_step(rt, enqueue, flow_id, 0, 3, 1) is Kind.SENT
    other = start(rt)
    assert tasks.send_step(rt, enqueue, other, 0, 1, 1) is Kind.AMBIGUOUS
    sends = {
        (labels["provider"], labels["result"]): value
        for labels, value in metrics.series(rt.store.metrics.read(), "provider_sends")
        if labels["channel"] == "sms"
    }
    assert sends == {
        ("p1", "unavailable"): 1,
        ("p1", "rejected"): 1,
        ("p2", "accepted"): 1,
        ("p2", "ambiguous"): 1,
    }


def test_a_step_that_breaks_its_rules_with_the_code_in_fails_at_once_without_the_code(
    redis_client: redis.Redis, enqueue: RecordingTasks, caplog: pytest.LogCaptureFixture
) -> None:
    # 1600 characters with a 4-digit code (intake checks that), 1606 with a 10-digit code
    # (a keyring that makes codes too long, as a stored code once could be): rendering fails,
    # which once raised with the code in the error's text and left the step in `sending`
    # until its lease ran out
    sms = FLOW["messages"][0] | {
        "data": FLOW["messages"][0]["data"] | {"message": "x" * 1592 + "{{code}}"}
    }
    whatsapp = FLOW["messages"][1] | {
        "data": FLOW["messages"][1]["data"] | {"text": "Code {{code}}"}
    }
    request = FlowRequest.parse({"messages": [sms, whatsapp], "otp": {"length": 4}})
    code = "7319528406"
    p1 = ScriptedProvider("p1", ["msg-1"])
    rt = runtime(redis_client, "p1", p1)

    class TooLongCodes(Keyring):
        def code(self, flow_id: str, length: int) -> str:
            return code

    rt.store.keyring = TooLongCodes(rt.store.keyring.recipients, rt.store.keyring.codes)
    flow_id = rt.store.create("ws", request)
    rt.store.mark_enqueued(flow_id)
    with caplog.at_level("DEBUG"):
        assert tasks.send_step(rt, enqueue, flow_id, 0, 1, 0) is Kind.RENDER_FAILED
    assert p1.calls == []
    assert enqueue.calls == [("send", (1, 1, 0), 0)]  # the next channel starts now
    view = rt.store.get(flow_id)
    assert view is not None and view.steps[0].status == "error"
    assert view.steps[0].reason == "the message is not valid with its code filled in"
    assert code not in caplog.text
    assert all(code not in str(event) for event in view.events)
