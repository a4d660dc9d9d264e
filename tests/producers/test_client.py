"""The producer client against a real Redis, with the broker in memory."""

from __future__ import annotations

from typing import Any

import pytest
import redis
from kombu.exceptions import OperationalError

from otpflow.config.settings import Settings
from otpflow.flow import keys
from otpflow.flow.models import InvalidRequest
from otpflow.producers import (
    Conflict,
    OtpflowClient,
    RateLimited,
    ServiceUnavailable,
    verify_reply,
)
from otpflow.producers.client import IDEMPOTENCY_PENDING_SECONDS

SMS = {
    "channel": "sms",
    "timeout": 5,
    "messageType": "",
    "data": {"recipient": "919876543210", "message": "Code 1", "sender_id": "A", "route": "otp"},
}


def client(redis_client: redis.Redis, **routes: str) -> OtpflowClient:
    settings = Settings(broker_url="memory://", routes={"sms": "zixflow", **routes})
    return OtpflowClient(settings, redis_client=redis_client)


def test_a_channel_without_a_provider_is_refused_before_anything_is_stored(
    redis_client: redis.Redis,
) -> None:
    otp = client(redis_client, sms="")
    with pytest.raises(InvalidRequest) as caught:
        otp.send({"messages": [SMS]})
    (error,) = caught.value.errors
    assert error.path == "messages.0.channel"
    assert "OTPFLOW_ROUTES__SMS" in error.message
    assert redis_client.keys("*") == []


def test_send_stores_marks_and_enqueues(redis_client: redis.Redis) -> None:
    otp = client(redis_client)
    flow_id = otp.send({"messages": [SMS]})
    assert redis_client.hget(f"otpflow:flow:{flow_id}", "enqueued") == b"1"
    view = otp.status(flow_id)
    assert view is not None and view.status == "queued"


def test_a_first_send_claimed_before_the_confirmation_is_woken_by_it(
    redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    otp = client(redis_client)
    published: list[list[Any]] = []

    def quick_worker(name: str, args: list[Any], **_: Any) -> None:
        published.append(args)  # a worker takes the send before the producer confirms
        assert otp.store.claim(args[0], 0, 1, 30).kind == "not_enqueued"

    monkeypatch.setattr(otp.celery, "send_task", quick_worker)
    flow_id = otp.send({"messages": [SMS]})
    assert published == [[flow_id, 0, 1, 0, 1]]  # published once: the worker waits
    assert otp.store.wait_confirmed(flow_id, 5) is True
    assert otp.store.claim(flow_id, 0, 1, 30, waited=True).kind == "claimed"


def test_a_first_send_that_stopped_waiting_is_published_again(
    redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    otp = client(redis_client)
    published: list[list[Any]] = []

    def quick_worker(name: str, args: list[Any], **_: Any) -> None:
        published.append(args)
        if len(published) == 1:  # a worker takes the send first and waits in vain
            assert otp.store.claim(args[0], 0, 1, 30).kind == "not_enqueued"
            assert otp.store.claim(args[0], 0, 1, 30, waited=True).kind == "not_enqueued"

    monkeypatch.setattr(otp.celery, "send_task", quick_worker)
    flow_id = otp.send({"messages": [SMS]})
    assert published == [[flow_id, 0, 1, 0, 1]] * 2  # not left to wait for a timer
    assert otp.store.claim(flow_id, 0, 1, 30).kind == "claimed"


def test_a_confirmed_flow_is_published_once(
    redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    otp = client(redis_client)
    published: list[list[Any]] = []
    monkeypatch.setattr(otp.celery, "send_task", lambda name, args, **_: published.append(args))
    flow_id = otp.send({"messages": [SMS]})
    assert published == [[flow_id, 0, 1, 0, 1]]


def test_a_flow_discarded_before_its_producer_confirmed_it_is_a_503_and_blocks_no_one(
    redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    otp = client(redis_client)

    def slow_publish(name: str, args: list[Any], **_: Any) -> None:
        # the publish takes longer than the grace: the timer loop discards the flow meanwhile
        assert otp.store.check(args[0], 0).kind == "discarded"

    with monkeypatch.context() as patch:
        patch.setattr(otp.celery, "send_task", slow_publish)
        with pytest.raises(ServiceUnavailable):
            otp.send({"messages": [SMS]}, idempotency_key="k-9")
    assert redis_client.keys("otpflow:flow:*") == []
    assert idempotency_record(redis_client, "k-9") == ("", -2)
    otp.send({"messages": [SMS]})  # the recipient is not held by a flow that never ran


def test_a_recipient_past_its_wrong_code_budget_gets_no_new_flow_and_no_verify(
    redis_client: redis.Redis,
) -> None:
    settings = Settings(
        broker_url="memory://",
        routes={"sms": "zixflow"},
        limits={"verify_failures": 3, "recipient_flows": 100},
    )
    otp = OtpflowClient(settings, redis_client=redis_client)
    sms = SMS | {"data": SMS["data"] | {"message": "Code {{code}}"}}
    flow = {"messages": [sms], "otp": {"max_attempts": 10}, "allowConcurrent": True}
    flows = [otp.send(flow) for _ in range(2)]
    for flow_id in (flows[0], flows[0], flows[1]):
        assert otp.verify(flow_id, "0000").kind == "wrong"
    with pytest.raises(RateLimited) as refused:
        otp.send(flow)
    assert 0 < refused.value.retry_after <= 3600
    body, status = verify_reply(otp.verify(flows[1], "0000"))
    assert status == 429 and 0 < body["retry_after"] <= 3600


def idempotency_record(redis_client: redis.Redis, key: str) -> tuple[str, int]:
    name = keys.idempotency("default", key)
    raw = redis_client.get(name)
    return (raw.decode() if raw else ""), int(redis_client.ttl(name))


def test_an_idempotency_key_is_recorded_with_the_acceptance(redis_client: redis.Redis) -> None:
    otp = client(redis_client)
    flow_id = otp.send({"messages": [SMS]}, idempotency_key="k-1")
    value, ttl = idempotency_record(redis_client, "k-1")
    assert value.endswith(f" {flow_id}") and ttl > IDEMPOTENCY_PENDING_SECONDS
    assert otp.send({"messages": [SMS]}, idempotency_key="k-1") == flow_id


def test_a_send_refused_by_the_broker_frees_its_idempotency_key(
    redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    otp = client(redis_client)
    with monkeypatch.context() as patch:
        patch.setattr(otp.celery, "send_task", broker_down)
        with pytest.raises(ServiceUnavailable):
            otp.send({"messages": [SMS]}, idempotency_key="k-2")
    assert idempotency_record(redis_client, "k-2") == ("", -2)
    flow_id = otp.send({"messages": [SMS]}, idempotency_key="k-2")  # the retry goes through
    assert idempotency_record(redis_client, "k-2")[0].endswith(f" {flow_id}")


def test_a_key_a_failed_send_could_not_free_lapses_within_a_minute(
    redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    otp = client(redis_client)

    def redis_down(*_: Any, **__: Any) -> None:
        raise redis.ConnectionError("connection refused")

    monkeypatch.setattr(otp.store, "mark_enqueued", redis_down)  # the acceptance fails
    monkeypatch.setattr(otp.redis, "delete", redis_down)  # and so does freeing the key
    with pytest.raises(ServiceUnavailable):
        otp.send({"messages": [SMS]}, idempotency_key="k-3")
    value, ttl = idempotency_record(redis_client, "k-3")
    assert value.endswith(" pending") and 0 < ttl <= IDEMPOTENCY_PENDING_SECONDS


def broker_down(*_: Any, **__: Any) -> None:
    raise OperationalError("broker unreachable")


@pytest.mark.parametrize("typed", ["12", "12345678901", "12a456", "", None])
def test_something_that_is_no_code_is_refused_without_spending_an_attempt(
    redis_client: redis.Redis, typed: Any
) -> None:
    otp = client(redis_client)
    sms = SMS | {"data": SMS["data"] | {"message": "Code {{code}}"}}
    flow_id = otp.send({"messages": [sms], "otp": {"max_attempts": 3}})
    with pytest.raises(InvalidRequest) as caught:
        otp.verify(flow_id, typed)
    assert [error.path for error in caught.value.errors] == ["code"]
    assert redis_client.hget(keys.flow(flow_id), "otp_attempts_left") == b"3"


def limited_client(redis_client: redis.Redis, **limits: int) -> OtpflowClient:
    settings = Settings(broker_url="memory://", routes={"sms": "zixflow"}, limits=limits)
    return OtpflowClient(settings, redis_client=redis_client)


def sms_to(recipient: str) -> dict[str, Any]:
    return SMS | {"data": SMS["data"] | {"recipient": recipient}}


def email_to(address: str) -> dict[str, Any]:
    data = {"to": address, "from": "otp@acme.example.org", "subject": "Code", "text": "Code 1"}
    return {"channel": "email", "timeout": 5, "messageType": "", "data": data}


def test_a_number_without_its_country_code_is_refused_not_counted_apart(
    redis_client: redis.Redis,
) -> None:
    otp = limited_client(redis_client, recipient_flows=1)
    otp.send({"messages": [sms_to("919800000001")], "allowConcurrent": True})
    with pytest.raises(RateLimited):
        otp.send({"messages": [sms_to("919800000001")], "allowConcurrent": True})
    # the same phone without its 91 once went through as another recipient
    with pytest.raises(InvalidRequest) as caught:
        otp.send({"messages": [sms_to("9800000001")], "allowConcurrent": True})
    [error] = caught.value.errors
    assert error.path == "messages.0.data.recipient"
    assert "valid phone number" in error.message and "9800000001" not in error.message


@pytest.mark.parametrize(
    "other", ["Victim@Example.org", "VICTIM@example.org", "victim+1@example.org"]
)
def test_an_email_address_is_limited_however_it_is_written(
    redis_client: redis.Redis, other: str
) -> None:
    otp = limited_client(redis_client, recipient_flows=1)
    otp.send({"messages": [email_to("victim@example.org")], "allowConcurrent": True})
    with pytest.raises(RateLimited):
        otp.send({"messages": [email_to(other)], "allowConcurrent": True})


def test_a_running_flow_holds_its_recipient_however_the_address_is_written(
    redis_client: redis.Redis,
) -> None:
    otp = limited_client(redis_client)
    otp.send({"messages": [email_to("victim@example.org")]})
    with pytest.raises(Conflict):
        otp.send({"messages": [email_to("Victim+otp@EXAMPLE.org")]})


def test_each_step_to_a_recipient_counts_against_its_message_budget(
    redis_client: redis.Redis,
) -> None:
    otp = limited_client(redis_client, recipient_flows=5, recipient_messages=10)
    otp.send({"messages": [sms_to("919800000001")] * 10, "allowConcurrent": True})
    with pytest.raises(RateLimited) as caught:
        otp.send({"messages": [sms_to("919800000001")], "allowConcurrent": True})
    assert "10 messages" in str(caught.value)
    assert 590 <= caught.value.retry_after <= 600
    otp.send({"messages": [sms_to("919800000002")], "allowConcurrent": True})  # another person


def test_the_message_budget_waits_for_the_oldest_flows_that_free_enough(
    redis_client: redis.Redis,
) -> None:
    otp = limited_client(redis_client, recipient_flows=5, recipient_messages=4)
    otp.send({"messages": [sms_to("919800000001")] * 2, "allowConcurrent": True})
    otp.send({"messages": [sms_to("919800000001")] * 2, "allowConcurrent": True})
    with pytest.raises(RateLimited) as caught:
        otp.send({"messages": [sms_to("919800000001")] * 3, "allowConcurrent": True})
    assert 590 <= caught.value.retry_after <= 600


def test_a_flow_with_more_steps_than_a_window_allows_is_a_bad_request(
    redis_client: redis.Redis,
) -> None:
    otp = limited_client(redis_client, recipient_messages=3)
    with pytest.raises(InvalidRequest) as caught:
        otp.send({"messages": [sms_to("919800000001")] * 4})
    [error] = caught.value.errors
    assert error.path == "messages" and "3 messages" in error.message
    assert redis_client.keys("otpflow:*") == []


def test_a_flow_that_was_never_accepted_gives_its_messages_back(
    redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    otp = limited_client(redis_client, recipient_messages=3)
    with monkeypatch.context() as patch:
        patch.setattr(otp.celery, "send_task", broker_down)
        with pytest.raises(ServiceUnavailable):
            otp.send({"messages": [sms_to("919800000001")] * 3})
    otp.send({"messages": [sms_to("919800000001")] * 3})


def test_channel_order_auto_reorders_by_merit_and_the_timeline_says_so(
    redis_client: redis.Redis,
) -> None:
    otp = client(redis_client, whatsapp="zixflow")
    whatsapp = {
        "channel": "whatsapp",
        "timeout": 5,
        "messageType": "custom",
        "data": {"recipient": "919876543210", "phone_id": "p1", "text": "Code 1"},
    }
    body = {"messages": [SMS, whatsapp], "channelOrder": "auto"}
    # measured: SMS in IN delivers a third, WhatsApp nearly all, quickly
    seconds, _ = redis_client.time()
    bucket = keys.routing_stats(int(seconds // otp.settings.routing.bucket_seconds))
    for field, count in {
        "zixflow|sms|IN|delivered": 30,
        "zixflow|sms|IN|expired": 70,
        "zixflow|whatsapp|IN|delivered": 98,
        "zixflow|whatsapp|IN|expired": 2,
        "zixflow|whatsapp|IN|lat2": 98,
    }.items():
        redis_client.hset(bucket, field, count)
    auto = otp.status(otp.send(body, workspace="a"))
    assert auto is not None
    assert [step.channel for step in auto.steps] == ["whatsapp", "sms"]
    (created,) = [e for e in auto.events if e["type"] == "flow_created"]
    assert created["reordered"]["caller_order"] == ["sms", "whatsapp"]
    # without it the caller's order is law
    body["channelOrder"] = "caller"
    kept = otp.status(otp.send(body, workspace="b"))
    assert kept is not None and [step.channel for step in kept.steps] == ["sms", "whatsapp"]
    assert "reordered" not in next(e for e in kept.events if e["type"] == "flow_created")
