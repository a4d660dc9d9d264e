"""The scrape: counters kept in Redis become Prometheus families, histograms cumulative."""

from __future__ import annotations

import math

import redis
from prometheus_client.parser import text_string_to_metric_families

from otpflow.api.metrics import render
from otpflow.config.routing import RoutingSettings
from otpflow.config.settings import RoutesSettings
from otpflow.flow import keys
from otpflow.flow.metrics import LATENCY_BUCKETS, METRICS, Metrics, bucket_label, field
from otpflow.flow.router import Router
from otpflow.flow.routing_store import RoutingStore


def scrape(redis_client: redis.Redis) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    samples: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    text = render(Metrics(redis_client)).decode()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = tuple(sorted(sample.labels.items()))
            samples.setdefault(sample.name, {})[labels] = sample.value
    return samples


def test_every_metric_is_exposed_even_before_anything_counted(redis_client: redis.Redis) -> None:
    families = text_string_to_metric_families(render(Metrics(redis_client)).decode())
    assert {f.name: f.type for f in families} == {
        f"otpflow_{name}": spec.kind for name, spec in METRICS.items()
    }


def test_counters_and_a_histogram_from_redis(redis_client: redis.Redis) -> None:
    recorder = Metrics(redis_client)
    recorder.incr("provider_sends", provider="zixflow", channel="sms", result="accepted")
    recorder.incr("provider_sends", provider="zixflow", channel="sms", result="accepted")
    recorder.incr("webhook_deliveries", event="terminal", result="delivered")
    labels = {"channel": "sms", "provider": "zixflow", "outcome": "delivered"}
    # observations of 0.3 s (bucket 0.5) and 3 s (bucket 5.0), as the store's Lua writes them
    redis_client.hincrby(keys.metrics(), field("dlr_latency_seconds", **labels) + "|le=0.5", 1)
    redis_client.hincrby(keys.metrics(), field("dlr_latency_seconds", **labels) + "|le=5.0", 1)
    redis_client.hincrbyfloat(keys.metrics(), field("dlr_latency_seconds_sum", **labels), 3.3)
    redis_client.hincrby(keys.metrics(), "retired_metric|x=1", 5)  # unknown fields are skipped

    samples = scrape(redis_client)
    sends = (("channel", "sms"), ("provider", "zixflow"), ("result", "accepted"))
    assert samples["otpflow_provider_sends_total"] == {sends: 2.0}
    assert samples["otpflow_webhook_deliveries_total"] == {
        (("event", "terminal"), ("result", "delivered")): 1.0
    }
    buckets = {
        dict(key)["le"]: value
        for key, value in samples["otpflow_dlr_latency_seconds_bucket"].items()
    }
    expected = {bucket_label(b): (0 if b < 0.5 else 1 if b < 5 else 2) for b in LATENCY_BUCKETS}
    assert {float(le): v for le, v in buckets.items()} == {
        (math.inf if le == "+Inf" else float(le)): float(v) for le, v in expected.items()
    }
    series = tuple(sorted(labels.items()))
    assert samples["otpflow_dlr_latency_seconds_count"] == {series: 2.0}
    assert samples["otpflow_dlr_latency_seconds_sum"][series] == 3.3
    assert not any(name.startswith("retired") for name in samples)


def test_routing_gauges_come_from_the_live_table(redis_client: redis.Redis) -> None:
    routing = RoutingSettings()
    router = Router(RoutingStore(redis_client), routing, RoutesSettings(sms=["a", "b"]))
    seconds, _ = redis_client.time()
    bucket = keys.routing_stats(int(seconds // routing.bucket_seconds))
    redis_client.hset(bucket, mapping={"a|sms|IN|delivered": 40, "a|sms|IN|expired": 60})
    prefix = "b|sms|"
    redis_client.hset(
        keys.routing_breakers(),
        mapping={f"{prefix}state": "open", f"{prefix}since": seconds, f"{prefix}opened": 1},
    )
    families = text_string_to_metric_families(render(Metrics(redis_client), router).decode())
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in families
        for sample in family.samples
    }
    india = (("channel", "sms"), ("country", "IN"))
    share = samples[("otpflow_routing_delivered_share", (*india, ("provider", "a")))]
    assert share == 0.4
    assert samples[("otpflow_routing_breaker_state", (("channel", "sms"), ("provider", "b")))] == 2
    assert samples[("otpflow_routing_breaker_state", (("channel", "sms"), ("provider", "a")))] == 0
    scores = {
        labels: value
        for (name, labels), value in samples.items()
        if name == "otpflow_routing_score"
    }
    assert set(scores) == {(*india, ("provider", "a")), (*india, ("provider", "b"))}
