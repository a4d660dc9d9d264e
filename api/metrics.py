"""The Prometheus view of the counters every process keeps in Redis (:mod:`otpflow.flow.metrics`).

The API serves it at ``/metrics``: one ``HGETALL`` per scrape, turned into metric families here.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from otpflow.flow.metrics import LATENCY_BUCKETS, METRICS, Metrics, bucket_label, parse_field
from otpflow.flow.router import Router
from otpflow.flow.routing import BreakerState

NAMESPACE = "otpflow"
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class RedisCollector(Collector):
    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def collect(self) -> Iterator[Metric]:
        # series -> value; histogram series -> {le: count} and sums
        series: dict[str, dict[tuple[str, ...], float]] = defaultdict(dict)
        buckets: dict[str, dict[tuple[str, ...], dict[str, float]]] = defaultdict(
            lambda: defaultdict(dict)
        )
        sums: dict[str, dict[tuple[str, ...], float]] = defaultdict(dict)
        for raw, value in self.metrics.read().items():
            name, labels = parse_field(raw)
            base = name.removesuffix("_sum")
            spec = METRICS.get(base)
            if spec is None:  # written by a newer or older version: not ours to show
                continue
            key = tuple(labels.get(label, "") for label in spec.labels)
            if spec.kind == "counter":
                series[name][key] = value
            elif name.endswith("_sum"):
                sums[base][key] = value
            else:
                buckets[name][key][labels["le"]] = value

        for name, spec in METRICS.items():
            full = f"{NAMESPACE}_{name}"
            if spec.kind == "counter":
                counter = CounterMetricFamily(full, spec.help, labels=spec.labels)
                for key, value in sorted(series[name].items()):
                    counter.add_metric(list(key), value)
                yield counter
                continue
            histogram = HistogramMetricFamily(full, spec.help, labels=spec.labels)
            for key, counts in sorted(buckets[name].items()):
                cumulative, running = [], 0.0
                for bound in LATENCY_BUCKETS:
                    running += counts.get(bucket_label(bound), 0.0)
                    cumulative.append((bucket_label(bound), running))
                histogram.add_metric(list(key), cumulative, sums[name].get(key, 0.0))
            yield histogram


# Routing's gauges, made at each scrape from the live table (name -> help, labels).
# a breaker's gauge value: its state's place in BreakerState (0 closed, 1 half-open, 2 open)
BREAKER_GAUGE = {state: value for value, state in enumerate(BreakerState)}
GAUGES: dict[str, tuple[str, tuple[str, ...]]] = {
    "routing_score": (
        "Adaptive routing's score of a provider for a channel and country (0-1).",
        ("provider", "channel", "country"),
    ),
    "routing_delivered_share": (
        "Share of a provider's messages delivered while their step ran, in the window.",
        ("provider", "channel", "country"),
    ),
    "routing_preferred": (
        "1 for the provider adaptive routing prefers for a channel and country, else 0.",
        ("provider", "channel", "country"),
    ),
    "routing_breaker_state": (
        "A provider's circuit breaker on a channel: 0 closed, 1 half-open, 2 open.",
        ("provider", "channel"),
    ),
}


class RoutingCollector(Collector):
    def __init__(self, router: Router) -> None:
        self.router = router

    def collect(self) -> Iterator[Metric]:
        families = {
            name: GaugeMetricFamily(f"{NAMESPACE}_{name}", help, labels=labels)
            for name, (help, labels) in GAUGES.items()
        }
        breakers: dict[tuple[str, str], int] = {}
        for row in self.router.table():
            labels = [row["provider"], row["channel"], row["country"]]
            families["routing_score"].add_metric(labels, row["score"])
            if row["delivered_share"] is not None:
                families["routing_delivered_share"].add_metric(labels, row["delivered_share"])
            families["routing_preferred"].add_metric(labels, float(row["preferred"]))
            breakers[(row["provider"], row["channel"])] = BREAKER_GAUGE[row["breaker"]]
        for pair, state in sorted(breakers.items()):
            families["routing_breaker_state"].add_metric(list(pair), state)
        yield from families.values()


def render(metrics: Metrics, router: Router | None = None) -> bytes:
    """The Prometheus text exposition of every OTPflow metric."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(RedisCollector(metrics))
    if router is not None:
        registry.register(RoutingCollector(router))
    return generate_latest(registry)
