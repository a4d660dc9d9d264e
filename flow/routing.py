"""Adaptive routing's numbers: the live statistics of each (provider, channel, destination
country), and the score that orders a channel's providers (README, Routing).

The transitions that already run keep the statistics (``lua/routing.lua``, one ``HINCRBY``
each): every count goes into the bucket of a sliding window it fell in, one hash per bucket
(:func:`otpflow.flow.keys.routing_stats`) that expires a window after it ends. Memory is bounded
by the window's buckets times the (provider, channel, country, counter) fields in use.

Counters, per (provider, channel, country)::

    sent       accepted by the provider
    error      refused or unreachable (5xx, 429, connection refused, bad credentials)
    timeout    no answer in time: the provider may have the message
    rejected   this one message refused (4xx): counted, no mark against the provider's health
    delivered  a delivered report while the step ran
    failed     a failed report while the step ran
    expired    the step's timeout passed without a final report
    late       a delivered report after the step had ended
    codes      messages that carried a code;  verified  codes then entered right (conversion)
    lat<n>     delivered reports whose latency fell in the n-th of LATENCY_BUCKETS

The circuit breakers of each (provider, channel) live in one hash
(:func:`otpflow.flow.keys.routing_breakers`), moved by the same transitions (see
``routing.lua``); :class:`Breaker` reads one.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from otpflow.config.routing import WINDOW_BUCKETS, RoutingPolicy, RoutingSettings
from otpflow.flow import keys
from otpflow.flow.metrics import LATENCY_BUCKETS
from otpflow.flow.states import lua_enum

COUNTERS = (
    "sent",
    "error",
    "timeout",
    "rejected",
    "delivered",
    "failed",
    "expired",
    "late",
    "codes",
    "verified",
)
# What a provider nobody has measured yet is taken to deliver, worth PRIOR_WEIGHT outcomes:
# with no data every provider scores the same and the configured order stands; a few bad
# outcomes do not demote a provider, a few dozen do.
PRIOR_DELIVERY = 0.9
PRIOR_WEIGHT = 10
# latency is scored as REF / (REF + p50): 1 s -> 0.83, 5 s -> 0.5, 20 s -> 0.2
SPEED_REFERENCE_SECONDS = 5.0
MIN_LATENCY_SAMPLES = 5
# the weight of each factor in a policy's score (a product of powers, so a factor of 0.5 at
# weight 0.25 costs 16 %). Price weighs in only where delivery weighs more: the cheapest of
# the providers that deliver wins, never one that has stopped delivering.
POLICY_WEIGHTS: dict[RoutingPolicy, dict[str, float]] = {
    "quality": {"delivery": 1.0, "speed": 0.25, "conversion": 0.5, "price": 0.0},
    "price": {"delivery": 3.0, "speed": 0.0, "conversion": 0.5, "price": 1.0},
    "balance": {"delivery": 2.0, "speed": 0.15, "conversion": 0.5, "price": 0.5},
}
# the breakers count the sends of this many seconds (the older half weighs half)
BREAKER_WINDOW_SECONDS = 60
# an open breaker's cooldown doubles with each reopening, up to 2 ** 3 times
BREAKER_MAX_DOUBLINGS = 3
# A bucket's counts weigh half as much every HALF_LIFE_BUCKETS buckets back: a provider that
# degrades now is seen within a fifth of the window, not after the window has turned over,
# while the whole window still keeps a provider that gets little traffic measured.
HALF_LIFE_BUCKETS = WINDOW_BUCKETS / 5


def bucket_weight(age: int) -> float:
    """The weight of a bucket ``age`` buckets before the current one."""
    return float(0.5 ** (age / HALF_LIFE_BUCKETS))


@dataclass
class RouteStats:
    """The window's counts of one (provider, channel, country): as stored, or weighted by
    their bucket's age (:func:`bucket_weight`)."""

    counts: dict[str, float] = field(default_factory=dict)
    latency: list[float] = field(default_factory=lambda: [0.0] * len(LATENCY_BUCKETS))

    def add(self, counter: str, value: float) -> None:
        if counter.startswith("lat") and counter[3:].isdigit():  # lat<n>, not late
            index = int(counter[3:]) - 1
            if 0 <= index < len(self.latency):
                self.latency[index] += value
        else:
            self.counts[counter] = self.counts.get(counter, 0) + value

    def __getitem__(self, counter: str) -> float:
        return self.counts.get(counter, 0)

    @property
    def outcomes(self) -> float:
        """Sends whose fate is known: delivered, failed, expired, or not accepted."""
        return sum(self[c] for c in ("delivered", "failed", "expired", "error", "timeout"))

    @property
    def delivered_share(self) -> float | None:
        return self["delivered"] / self.outcomes if self.outcomes else None

    @property
    def error_share(self) -> float | None:
        tried = self["sent"] + self["error"] + self["timeout"]
        return (self["error"] + self["timeout"]) / tried if tried else None

    def latency_quantile(self, q: float) -> float | None:
        """Seconds from acceptance to a delivered report below which ``q`` of them came,
        interpolated inside the bucket it falls in; None with too few samples."""
        total = sum(self.latency)
        if total < MIN_LATENCY_SAMPLES:
            return None
        rank, seen, lower = q * total, 0.0, 0.0
        for bound, count in zip(LATENCY_BUCKETS, self.latency, strict=True):
            if count and seen + count >= rank:
                upper = bound if bound != math.inf else lower * 2 or 1.0
                return lower + (upper - lower) * (rank - seen) / count
            seen += count
            lower = bound if bound != math.inf else lower
        return lower

    @property
    def conversion(self) -> float | None:
        return self["verified"] / self["codes"] if self["codes"] else None


@dataclass(frozen=True)
class Score:
    """A provider's score for one channel and country, with the factors it is made of (each
    in 0-1, 1 the best there is)."""

    provider: str
    value: float
    delivery: float
    speed: float
    conversion: float
    price: float
    outcomes: float

    def as_dict(self) -> dict[str, float | int | str]:
        return {
            "provider": self.provider,
            "score": round(self.value, 4),
            "delivery": round(self.delivery, 4),
            "speed": round(self.speed, 4),
            "conversion": round(self.conversion, 4),
            "price": round(self.price, 4),
            "outcomes": round(self.outcomes, 1),
        }


def estimated_delivery(stats: RouteStats) -> float:
    """The delivered share, pulled towards PRIOR_DELIVERY while outcomes are few."""
    return (stats["delivered"] + PRIOR_DELIVERY * PRIOR_WEIGHT) / (stats.outcomes + PRIOR_WEIGHT)


def speed(stats: RouteStats) -> float:
    """REF / (REF + median latency); an unmeasured provider is taken to be REF-fast (0.5)."""
    p50 = stats.latency_quantile(0.5)
    seconds = SPEED_REFERENCE_SECONDS if p50 is None else p50
    return SPEED_REFERENCE_SECONDS / (SPEED_REFERENCE_SECONDS + seconds)


def score(
    candidates: Sequence[str],
    stats: Mapping[str, RouteStats],
    policy: RoutingPolicy,
    prices: Mapping[str, float | None],
) -> list[Score]:
    """Score a channel's providers for one country, best first; equal scores keep the order
    of ``candidates`` (the configured order), so with no data nothing moves.

    Conversion and price are relative among the candidates: a provider's verified share
    against the best one's (each pulled towards the candidates' pooled share while it has few
    codes), the cheapest price against its own. A provider without a price is not penalised.
    """
    empty = RouteStats()
    rows = {name: stats.get(name, empty) for name in candidates}
    codes = sum(row["codes"] for row in rows.values())
    pooled = sum(row["verified"] for row in rows.values()) / codes if codes else 1.0
    converted = {
        name: (row["verified"] + pooled * PRIOR_WEIGHT) / (row["codes"] + PRIOR_WEIGHT)
        for name, row in rows.items()
    }
    best_conversion = max(converted.values(), default=0.0)
    known = [price for price in prices.values() if price]
    cheapest = min(known, default=0.0)
    weights = POLICY_WEIGHTS[policy]
    scored = []
    for name, row in rows.items():
        price = prices.get(name)
        factors = {
            "delivery": estimated_delivery(row),
            "speed": speed(row),
            "conversion": converted[name] / best_conversion if best_conversion else 1.0,
            "price": cheapest / price if price and cheapest else 1.0,
        }
        value = math.prod(max(factors[f], 1e-6) ** w for f, w in weights.items())
        scored.append(Score(name, value, **factors, outcomes=row.outcomes))
    order = {name: index for index, name in enumerate(candidates)}
    return sorted(scored, key=lambda s: (-round(s.value, 9), order[s.provider]))


class BreakerState(StrEnum):
    """A (provider, channel)'s circuit breaker (``routing.lua`` moves it, reads it as
    ``BREAKER``); the order is its gauge's value."""

    CLOSED = "closed"  # sends go through, counted
    HALF_OPEN = "half_open"  # its cooldown has passed: a few probes decide
    OPEN = "open"  # skipped while it cools down


def breaker_cooldown(base_seconds: float, opened: int) -> float:
    """An open breaker's cooldown after its ``opened``-th opening in a row: the base, doubled
    with each reopening, up to 2 ** BREAKER_MAX_DOUBLINGS times. Lua reads it rendered
    (``BREAKER_COOLDOWNS``, :func:`lua_prelude`)."""
    return float(base_seconds * 2 ** min(max(opened - 1, 0), BREAKER_MAX_DOUBLINGS))


@dataclass(frozen=True)
class Breaker:
    """One (provider, channel)'s circuit breaker as stored (``routing.lua`` moves it)."""

    state: BreakerState = BreakerState.CLOSED
    since: float = 0.0
    opened: int = 0
    ok: int = 0
    err: int = 0

    def cooldown(self, base_seconds: float) -> float:
        return breaker_cooldown(base_seconds, self.opened)

    def effective(self, now: float, base_seconds: float) -> BreakerState:
        """``open`` (skipped), ``half_open`` (probed) or ``closed`` at ``now`` (Redis time):
        an open breaker whose cooldown has passed takes probes."""
        if self.state == BreakerState.OPEN and now >= self.since + self.cooldown(base_seconds):
            return BreakerState.HALF_OPEN
        return self.state

    @classmethod
    def parse(cls, fields: Mapping[str, str]) -> Breaker:
        return cls(
            state=BreakerState(fields.get("state", BreakerState.CLOSED)),
            since=float(fields.get("since", 0)),
            opened=int(fields.get("opened", 0)),
            ok=int(fields.get("ok", 0)),
            err=int(fields.get("err", 0)),
        )


# what a transition stores of a step's route: the order of its providers, and why the one it
# records was chosen (JSON); empty when the caller has none to tell
RouteNote = tuple[str, str]
NO_NOTE: RouteNote = ("", "")


@dataclass(frozen=True)
class Route:
    """The providers a step tries, in order, and why each stands where it does (one dict per
    provider, for its timeline event: mode, policy, rank by score, score, breaker, and
    whether it was put first to explore or to probe)."""

    providers: tuple[str, ...]
    reasons: tuple[dict[str, Any], ...]

    def note(self, index: int) -> RouteNote:
        """What a transition stores: the order (kept by the step's first transition, for its
        later attempts) and why the provider at ``index`` was chosen (JSON)."""
        return " ".join(self.providers), json.dumps(self.reasons[index], separators=(",", ":"))


def stats_field(provider: str, channel: str, country: str, counter: str) -> str:
    """A field of a statistics bucket (as ``routing.lua`` writes it)."""
    return f"{provider}|{channel}|{country}|{counter}"


def lua_prelude(settings: RoutingSettings) -> str:
    """The constants ``routing.lua`` needs, rendered from the settings, :mod:`.keys` (a
    statistics bucket's key is named by ``routing_stats_key``, :func:`keys.lua_builders`),
    the breaker's states and its cooldowns: ``BREAKER_COOLDOWNS[n]`` after the n-th opening
    in a row (:func:`breaker_cooldown`; the last holds for every later one)."""
    edges = ", ".join("math.huge" if b == math.inf else repr(b) for b in LATENCY_BUCKETS)
    base = settings.breaker_cooldown_seconds
    cooldowns = ", ".join(
        repr(breaker_cooldown(base, opened)) for opened in range(1, BREAKER_MAX_DOUBLINGS + 2)
    )
    constants = f"""
local ROUTING_BREAKERS_KEY = '{keys.routing_breakers()}'
local ROUTING_BUCKET_SECONDS = {settings.bucket_seconds}
local ROUTING_STATS_TTL = {settings.window_seconds + 2 * settings.bucket_seconds}
local ROUTING_LATENCY_EDGES = {{{edges}}}
local BREAKER_WINDOW = {BREAKER_WINDOW_SECONDS}
local BREAKER_ERROR_SHARE = {settings.breaker_error_share!r}
local BREAKER_MIN_VOLUME = {settings.breaker_min_volume}
local BREAKER_COOLDOWNS = {{{cooldowns}}}
local BREAKER_PROBES = {settings.breaker_probes}
local BREAKER_TTL = {max(24 * 3600, settings.window_seconds * 2)}
"""
    return lua_enum("BREAKER", BreakerState) + constants
