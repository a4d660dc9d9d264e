"""Counters and histograms kept in Redis, so every process's numbers reach one scrape.

Workers and the API are separate processes, often on separate hosts (``--scale
worker=4``), so Prometheus's multiprocess mode (a shared directory) does not fit. Every process
adds to one Redis hash instead (:func:`otpflow.flow.keys.metrics`), and the API's ``/metrics``
reads it. Transitions count themselves inside the store's Lua scripts, so a flow that ends is
counted exactly once, however many tasks race to end it.

A hash field is ``<metric>|<label>=<value>|...`` with the labels in the order of
:data:`METRICS`; a histogram field adds ``le=<bucket>`` and counts the observations that fell
into that bucket alone (the scrape makes them cumulative), and ``<metric>_sum|...`` holds the sum.
Label values are OTPflow's own words (channels, providers, statuses), never caller data.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from redis import Redis
from redis.client import Pipeline

from otpflow.flow import keys

# Counters stay while anything counts; a month idle and they restart from zero, which
# Prometheus reads as a counter reset.
METRICS_TTL_SECONDS = 30 * 24 * 3600

# Send -> report seconds: SMS often lands in 2-10 s, chat apps in under a second.
LATENCY_BUCKETS = (0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, math.inf)


@dataclass(frozen=True)
class Metric:
    kind: str  # "counter" or "histogram"
    help: str
    labels: tuple[str, ...]


METRICS: dict[str, Metric] = {
    "flows_started": Metric("counter", "Flows accepted (their first send is queued).", ()),
    "flows_ended": Metric(
        "counter",
        "Flows that reached an end: delivered, failed, cancelled or verified (a flow that is "
        "delivered and then verified counts once, as delivered).",
        ("outcome",),
    ),
    "channel_switches": Metric(
        "counter",
        "Moves from one step's channel to the next, by why the earlier step ended.",
        ("from_channel", "to_channel", "reason"),
    ),
    "provider_sends": Metric(
        "counter",
        "Send attempts through a provider, by what the provider answered.",
        ("provider", "channel", "result"),
    ),
    "dlr_latency_seconds": Metric(
        "histogram",
        "Seconds from the provider accepting a step to its first final delivery report.",
        ("channel", "provider", "outcome"),
    ),
    "webhook_deliveries": Metric(
        "counter",
        "Attempts to deliver an event to a caller's URL, by event and result.",
        ("event", "result"),
    ),
    "verifications": Metric("counter", "Codes entered, by result.", ("result",)),
    "routing_preferred_changes": Metric(
        "counter",
        "Times adaptive routing changed the provider it prefers for a channel and country.",
        ("channel", "country"),
    ),
    "fraud_blocked": Metric(
        "counter",
        "Flows the fraud guard refused (enforce), pretended to send (shadow) or would have "
        "refused (monitor), by rule and the recipient's country.",
        ("reason", "country", "mode"),
    ),
}


def field(metric: str, **labels: str) -> str:
    """The hash field of one labelled series (labels in the metric's declared order); a
    histogram's ``<name>_sum`` takes the histogram's labels."""
    names = METRICS[metric.removesuffix("_sum")].labels
    if set(labels) != set(names):
        raise ValueError(f"{metric} takes labels {names}, got {tuple(labels)}")
    return "|".join([metric, *(f"{name}={labels[name]}" for name in names)])


def parse_field(raw: str) -> tuple[str, dict[str, str]]:
    """``name|k=v|...`` -> (name, labels)."""
    name, *pairs = raw.split("|")
    return name, dict(pair.split("=", 1) for pair in pairs)


def series(values: dict[str, float], metric: str) -> list[tuple[dict[str, str], float]]:
    """One metric's labelled values out of :meth:`Metrics.read`."""
    found = []
    for raw, value in values.items():
        name, labels = parse_field(raw)
        if name == metric:
            found.append((labels, value))
    return found


def bucket_label(bound: float) -> str:
    return "+Inf" if bound == math.inf else repr(bound)


def lua_prelude() -> str:
    """The constants ``lua/metrics.lua`` needs: the counters' TTL and the latency buckets,
    each ``{bound, label}``; the labels are rendered here, so Lua and the scrape spell them
    the same way."""
    buckets = ", ".join(
        f'{{{"math.huge" if b == math.inf else repr(b)}, "{bucket_label(b)}"}}'
        for b in LATENCY_BUCKETS
    )
    return f"""
local METRICS_TTL = {METRICS_TTL_SECONDS}
local LATENCY_BUCKETS = {{{buckets}}}
"""


def incr_in(pipe: Pipeline, metric: str, **labels: str) -> None:
    """Queue one increment on a pipeline (to count in the same round trip as other writes)."""
    pipe.hincrby(keys.metrics(), field(metric, **labels), 1)
    pipe.expire(keys.metrics(), METRICS_TTL_SECONDS)


class Metrics:
    """Adds to the shared counters from Python (what no store transition counts), and reads
    them all. The flow store owns the one each process writes with (``FlowStore.metrics``)."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis

    def incr(self, metric: str, **labels: str) -> None:
        pipe = self.redis.pipeline(transaction=False)
        incr_in(pipe, metric, **labels)
        pipe.execute()

    def read(self) -> dict[str, float]:
        """Every field and its value, as stored."""
        raw: dict[bytes | str, bytes | str] = self.redis.hgetall(keys.metrics())
        return {(k.decode() if isinstance(k, bytes) else k): float(v) for k, v in raw.items()}
