"""The Prometheus view of the counters every process keeps in Redis (:mod:`otpflow.flow.metrics`).

The API serves it at ``/metrics``: one ``HGETALL`` per scrape, turned into metric families here.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from otpflow.flow.metrics import LATENCY_BUCKETS, METRICS, Metrics, bucket_label, parse_field

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


def render(metrics: Metrics) -> bytes:
    """The Prometheus text exposition of every OTPflow metric."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(RedisCollector(metrics))
    return generate_latest(registry)
