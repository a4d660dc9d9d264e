"""Routing's numbers: the score (pure), and the statistics and breakers the store's
transitions keep in a real Redis."""

from __future__ import annotations

import time

import pytest
import redis

from otpflow.config.fraud import FraudSettings
from otpflow.config.routing import WINDOW_BUCKETS, RoutingSettings
from otpflow.flow import keys
from otpflow.flow.metrics import LATENCY_BUCKETS
from otpflow.flow.models import FlowRequest
from otpflow.flow.routing import PRIOR_DELIVERY, Breaker, RouteStats, score
from otpflow.flow.routing_store import read_snapshot
from otpflow.flow.states import DlrStatus
from otpflow.flow.store import FlowStore

from fakes import TEST_KEYRING


def stats(delivered: int = 0, expired: int = 0, latency_bin: int = 2, **counts: int) -> RouteStats:
    row = RouteStats()
    row.add("delivered", delivered)
    row.add("expired", expired)
    row.add(f"lat{latency_bin + 1}", delivered)
    for name, value in counts.items():
        row.add(name, value)
    return row


NO_PRICES: dict[str, float | None] = {"a": None, "b": None}


def ranked(rows: dict[str, RouteStats], policy: str = "quality", prices=NO_PRICES) -> list[str]:
    return [s.provider for s in score(["a", "b"], rows, policy, prices)]  # type: ignore[arg-type]


def test_with_no_data_the_configured_order_stands() -> None:
    assert ranked({}) == ["a", "b"]
    assert [s.provider for s in score(["b", "a"], {}, "quality", NO_PRICES)] == ["b", "a"]
    (first, second) = score(["a", "b"], {}, "quality", NO_PRICES)
    assert first.value == second.value and first.delivery == PRIOR_DELIVERY


def test_a_provider_that_stops_delivering_is_demoted_and_a_few_failures_are_not_enough() -> None:
    assert ranked({"a": stats(delivered=30, expired=70), "b": stats(delivered=95, expired=5)}) == [
        "b",
        "a",
    ]
    # two lost messages out of twelve: the prior keeps a within reach of an unmeasured b
    few = score(["a", "b"], {"a": stats(delivered=10, expired=2)}, "quality", NO_PRICES)
    assert abs(few[0].value - few[1].value) / max(few[0].value, few[1].value) < 0.1


def test_speed_breaks_a_tie_in_delivery_and_the_quantiles_interpolate() -> None:
    fast, slow = stats(delivered=50, latency_bin=2), stats(delivered=50, latency_bin=6)
    assert ranked({"a": slow, "b": fast}) == ["b", "a"]
    # all 50 between 0.5 s and 1 s: the median halfway
    assert fast.latency_quantile(0.5) == pytest.approx(0.75)
    assert slow.latency_quantile(0.9) is not None
    assert LATENCY_BUCKETS[5] < slow.latency_quantile(0.9) <= LATENCY_BUCKETS[6]
    assert RouteStats().latency_quantile(0.5) is None  # too few samples


def test_the_price_policy_prefers_the_cheaper_of_two_that_deliver() -> None:
    rows = {"a": stats(delivered=95, expired=5), "b": stats(delivered=90, expired=10)}
    prices = {"a": 0.008, "b": 0.002}
    assert ranked(rows, "quality", prices) == ["a", "b"]
    assert ranked(rows, "price", prices) == ["b", "a"]
    # but not one that has stopped delivering
    rows["b"] = stats(delivered=20, expired=80)
    assert ranked(rows, "price", prices) == ["a", "b"]


def test_conversion_counts_relative_to_the_other_providers() -> None:
    rows = {
        "a": stats(delivered=90, expired=10, codes=100, verified=20),
        "b": stats(delivered=90, expired=10, codes=100, verified=70),
    }
    assert ranked(rows) == ["b", "a"]
    # nobody verifies anything (a caller that checks codes itself): conversion moves nothing
    flat = {"a": stats(delivered=90, codes=100), "b": stats(delivered=90, codes=100)}
    first, second = score(["a", "b"], flat, "quality", NO_PRICES)
    assert first.conversion == second.conversion == 1.0


def test_an_open_breaker_takes_probes_after_its_cooldown_which_doubles() -> None:
    breaker = Breaker(state="open", since=100.0, opened=1)
    assert breaker.effective(110.0, 30) == "open"
    assert breaker.effective(130.0, 30) == "half_open"
    twice = Breaker(state="open", since=100.0, opened=2)
    assert twice.effective(130.0, 30) == "open" and twice.effective(160.0, 30) == "half_open"
    assert Breaker(state="open", since=0, opened=20).cooldown(30) == 240  # capped at 8 x


def test_settings_read_prices_and_country_policies() -> None:
    settings = RoutingSettings(
        prices="zixflow=0.01,zixflow:sms=0.006,zixflow:sms:IN=0.002",  # type: ignore[arg-type]
        country_policies="in:price, GB:balance",  # type: ignore[arg-type]
    )
    assert settings.price("zixflow", "sms", "IN") == 0.002
    assert settings.price("zixflow", "sms", "GB") == 0.006
    assert settings.price("zixflow", "whatsapp", "GB") == 0.01
    assert settings.price("messageflow", "sms", "GB") is None
    assert settings.policy_for("IN") == "price" and settings.policy_for("DE") == "quality"
    for bad in ({"prices": "zixflow"}, {"prices": "a=0"}, {"country_policies": "IN:cheap"}):
        with pytest.raises(ValueError):
            RoutingSettings(**bad)  # type: ignore[arg-type]


# -- the transitions keep the statistics (real Redis) -------------------------------------------

ROUTING = RoutingSettings(window_seconds=60, breaker_min_volume=4, breaker_cooldown_seconds=0.3)


@pytest.fixture
def store(redis_client: redis.Redis) -> FlowStore:
    return FlowStore(redis_client, TEST_KEYRING, ttl_seconds=600, routing=ROUTING)


def sms_flow(store: FlowStore, to: str = "919876543210", otp: bool = False) -> str:
    body: dict = {
        "messages": [
            {
                "channel": "sms",
                "timeout": 0,
                "data": {
                    "recipient": to,
                    "message": "Code {{code}}" if otp else "Code 4821",
                    "sender_id": "ACME",
                    "route": "otp",
                },
            }
        ]
    }
    if otp:
        body["otp"] = {"length": 6}
    flow_id = store.create("ws", FlowRequest.parse(body))
    store.mark_enqueued(flow_id)
    assert store.claim(flow_id, 0, 1, 30).kind == "claimed"
    return flow_id


def row(redis_client: redis.Redis, provider: str, country: str = "IN") -> RouteStats:
    return read_snapshot(redis_client, ROUTING).stats.get((provider, "sms", country), RouteStats())


def test_transitions_count_sends_reports_timeouts_and_verified_codes(
    store: FlowStore, redis_client: redis.Redis
) -> None:
    delivered = sms_flow(store)
    store.accepted(delivered, 0, "zixflow", "m1", 30)
    store.record_dlr(delivered, 0, DlrStatus.DELIVERED, "zixflow", "m1")
    expired = sms_flow(store, "447400123456")
    store.accepted(expired, 0, "zixflow", "m2", 0)
    assert store.check(expired, 0).kind == "exhausted"
    # a report after the timeout is late: it is no delivery of the step, but its latency counts
    store.record_dlr(expired, 0, DlrStatus.DELIVERED, "zixflow", "m2")
    failed = sms_flow(store)
    store.accepted(failed, 0, "zixflow", "m3", 30)
    store.record_dlr(failed, 0, DlrStatus.FAILED, "zixflow", "m3")
    refused = sms_flow(store)
    store.attempt_failed(refused, 0, "zixflow", "rejected (400)", 1, "rejected")
    store.attempt_failed(refused, 0, "zixflow", "unavailable (503)", 2, "error")
    coded = sms_flow(store, otp=True)
    store.accepted(coded, 0, "zixflow", "m4", 30)
    store.fraud.converted(coded, FraudSettings())

    india, britain = row(redis_client, "zixflow"), row(redis_client, "zixflow", "GB")
    assert india.counts == {
        "sent": 3,
        "delivered": 1,
        "failed": 1,
        "rejected": 1,
        "error": 1,
        "codes": 1,
        "verified": 1,
    }
    assert britain.counts == {"sent": 1, "expired": 1, "late": 1}
    assert sum(india.latency) == 1 and sum(britain.latency) == 1
    assert india.delivered_share == pytest.approx(1 / 3)  # delivered / (delivered, failed, error)


def test_the_statistics_stay_bounded_and_expire(
    store: FlowStore, redis_client: redis.Redis
) -> None:
    for n in range(40):
        flow_id = sms_flow(store, f"9198765{n:05d}")
        store.accepted(flow_id, 0, "zixflow", f"m{n}", 30)
    stat_keys = [key for key in redis_client.scan_iter(match=keys.routing_stats(0)[:-1] + "*")]
    assert 1 <= len(stat_keys) <= 2  # one bucket (two if the run crossed a bucket's edge)
    limit = ROUTING.window_seconds + 2 * ROUTING.bucket_seconds
    for key in [*stat_keys, keys.routing_breakers()]:
        assert redis_client.ttl(key) > 0, key
    assert all(redis_client.ttl(key) <= limit for key in stat_keys)
    # one field per counter in use, however many flows: 40 sends are one field
    assert redis_client.hlen(stat_keys[0]) == 1
    assert WINDOW_BUCKETS * ROUTING.bucket_seconds <= ROUTING.window_seconds


def failed_attempts(store: FlowStore, count: int, provider: str = "zixflow") -> None:
    for _ in range(count):
        flow_id = sms_flow(store)
        store.attempt_failed(flow_id, 0, provider, "unavailable (503)", 1, "error")


def breaker(redis_client: redis.Redis, provider: str = "zixflow") -> Breaker:
    return read_snapshot(redis_client, ROUTING).breakers.get((provider, "sms"), Breaker())


def test_the_breaker_opens_probes_after_its_cooldown_and_closes_on_accepted_probes(
    store: FlowStore, redis_client: redis.Redis
) -> None:
    failed_attempts(store, 3)
    assert breaker(redis_client).state == "closed"  # below the minimum volume
    failed_attempts(store, 1)
    opened = breaker(redis_client)
    assert opened.state == "open" and opened.opened == 1
    # results while it cools down prove nothing: still open, nothing counted
    failed_attempts(store, 5)
    assert breaker(redis_client) == opened
    time.sleep(ROUTING.breaker_cooldown_seconds + 0.05)
    # a failed probe opens it again, for twice as long
    failed_attempts(store, 1)
    again = breaker(redis_client)
    assert again.state == "open" and again.opened == 2 and again.since > opened.since
    time.sleep(2 * ROUTING.breaker_cooldown_seconds + 0.05)
    for n in range(ROUTING.breaker_probes):
        assert breaker(redis_client).state in ("open", "half_open")
        flow_id = sms_flow(store)
        store.accepted(flow_id, 0, "zixflow", f"probe{n}", 30)
    closed = breaker(redis_client)
    assert closed.state == "closed" and (closed.ok, closed.err) == (0, 0)


def test_a_refused_message_is_no_mark_against_the_provider(
    store: FlowStore, redis_client: redis.Redis
) -> None:
    for _ in range(10):
        flow_id = sms_flow(store)
        store.attempt_failed(flow_id, 0, "zixflow", "rejected (400)", 1, "rejected")
    assert breaker(redis_client).state == "closed"
    assert row(redis_client, "zixflow")["rejected"] == 10
