"""Adaptive routing's part of the store (``FlowStore.routing``): reads the statistics, the
breakers and the preferred providers in one round trip, and writes a change of preferred
provider. The counts themselves are written by the flow transitions (``lua/routing.lua``)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from redis import Redis

from otpflow.config.routing import WINDOW_BUCKETS, RoutingSettings
from otpflow.flow import keys
from otpflow.flow.metrics import incr_in
from otpflow.flow.outcomes import text
from otpflow.flow.routing import Breaker, RouteStats, Score, bucket_weight

# the preferred providers are kept this long after the last change (refreshed on every read)
LEADERS_TTL_SECONDS = 7 * 24 * 3600


@dataclass
class Snapshot:
    """The statistics, breakers and preferred providers as one process last read them."""

    taken: float  # monotonic seconds
    now: float  # Redis time when read
    # weighted towards the latest buckets (what routing decides by), and as counted
    stats: dict[tuple[str, str, str], RouteStats] = field(default_factory=dict)
    totals: dict[tuple[str, str, str], RouteStats] = field(default_factory=dict)
    breakers: dict[tuple[str, str], Breaker] = field(default_factory=dict)
    leaders: dict[tuple[str, str], str] = field(default_factory=dict)
    # the scores of (channel, country), computed on first use
    scored: dict[tuple[str, str], list[Score]] = field(default_factory=dict)

    def redis_now(self) -> float:
        return self.now + time.monotonic() - self.taken


class RoutingStore:
    """Routing's reads and its one write; one per process, inside the flow store."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis

    def snapshot(self, settings: RoutingSettings) -> Snapshot:
        """Every bucket of the window, the breakers and the preferred providers."""
        return read_snapshot(self.redis, settings)

    def prefer(self, channel: str, country: str, provider: str, changed: bool) -> None:
        """Store the provider preferred for (channel, country); ``changed``: it replaces
        another (counted in ``routing_preferred_changes``)."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.hset(keys.routing_leaders(), f"{channel}|{country}", provider)
        pipe.expire(keys.routing_leaders(), LEADERS_TTL_SECONDS)
        if changed:
            incr_in(pipe, "routing_preferred_changes", channel=channel, country=country)
        pipe.execute()


def read_snapshot(redis: Redis, settings: RoutingSettings) -> Snapshot:
    """Every bucket of the window (weighted by age, and as counted), the breakers and the
    preferred providers, in one round trip after reading Redis's clock."""
    seconds, micros = redis.time()
    now = seconds + micros / 1e6
    current = int(now // settings.bucket_seconds)
    pipe = redis.pipeline(transaction=False)
    for bucket in range(current - WINDOW_BUCKETS + 1, current + 1):
        pipe.hgetall(keys.routing_stats(bucket))
    pipe.hgetall(keys.routing_breakers())
    pipe.hgetall(keys.routing_leaders())
    pipe.expire(keys.routing_leaders(), LEADERS_TTL_SECONDS)
    *buckets, raw_breakers, raw_leaders, _ = pipe.execute()
    snapshot = Snapshot(time.monotonic(), now)
    for age, raw in enumerate(reversed(buckets)):
        weight = bucket_weight(age)
        for name, value in raw.items():
            provider, channel, country, counter = text(name).split("|", 3)
            route = (provider, channel, country)
            snapshot.stats.setdefault(route, RouteStats()).add(counter, weight * int(value))
            snapshot.totals.setdefault(route, RouteStats()).add(counter, int(value))
    fields: dict[tuple[str, str], dict[str, str]] = {}
    for name, value in raw_breakers.items():
        provider, channel, what = text(name).split("|", 2)
        fields.setdefault((provider, channel), {})[what] = text(value)
    snapshot.breakers = {pair: Breaker.parse(values) for pair, values in fields.items()}
    for name, value in raw_leaders.items():
        channel, country = text(name).split("|", 1)
        snapshot.leaders[(channel, country)] = text(value)
    return snapshot
