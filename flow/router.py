"""The router: which of a channel's providers a message tries first, and then which.

``static`` mode: the configured order (``OTPFLOW_ROUTES__<CHANNEL>``), always.

``adaptive`` mode, per message, for the recipient's channel and country:

1. every configured provider is scored from the live statistics (:func:`.routing.score`,
   the country's policy); with no data all score the same and the configured order stands;
2. the *preferred* provider (kept in Redis for every process) changes only when another one
   scores ``switch_margin`` better than it: noise does not move traffic back and forth;
3. providers whose circuit breaker is open go last, in score order (with every one open, the
   least bad is still tried: statistics never stop a send); a half-open one goes first for
   ``probe_share`` of messages, to probe it;
4. ``exploration_share`` of messages go first through another provider whose breaker is
   closed, so a demoted provider is measured again and can win its place back.

Each process reads the statistics at most every ``refresh_seconds`` (one round trip).
"""

from __future__ import annotations

import random
import time
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from otpflow.config.routing import RoutingSettings
from otpflow.config.settings import RoutesSettings
from otpflow.flow.models import FlowRequest
from otpflow.flow.routing import (
    PRIOR_WEIGHT,
    Breaker,
    BreakerState,
    Route,
    RouteStats,
    Score,
    estimated_delivery,
    score,
    speed,
)
from otpflow.flow.routing_store import RoutingStore, Snapshot


class Router:
    """Orders a channel's providers per message; one per process, built at the edge."""

    def __init__(
        self,
        store: RoutingStore,
        settings: RoutingSettings,
        routes: RoutesSettings,
        rng: random.Random | None = None,
    ) -> None:
        self.store = store
        self.settings = settings
        self.routes = routes
        self.rng = rng or random.Random()
        self._snapshot: Snapshot | None = None

    def snapshot(self, fresh: bool = False) -> Snapshot:
        """The statistics as last read, read again when older than ``refresh_seconds``."""
        last = self._snapshot
        if fresh or last is None or time.monotonic() - last.taken >= self.settings.refresh_seconds:
            self._snapshot = last = self.store.snapshot(self.settings)
        return last

    def configured(self, channel: str, available: Sequence[str] | None = None) -> list[str]:
        names = self.routes.for_channel(channel)
        return names if available is None else [name for name in names if name in available]

    def route(self, channel: str, country: str, available: Sequence[str] | None = None) -> Route:
        """The order one message to ``country`` tries ``channel``'s providers in (those of
        ``available``, if given), and why."""
        providers = self.configured(channel, available)
        mode = self.settings.mode
        if len(providers) == 1:
            return Route(tuple(providers), ({"mode": mode, "rank": 1, "only": True},))
        if mode == "static" or not providers:
            reasons = tuple({"mode": mode, "rank": n} for n in range(1, len(providers) + 1))
            return Route(tuple(providers), reasons)
        snap = self.snapshot()
        # scored once per snapshot: each message then costs a lookup and a draw
        scores = snap.scored.get((channel, country))
        if scores is None:
            scores = snap.scored[(channel, country)] = self.scores(
                snap, channel, country, providers
            )
        preferred = self._preferred(snap, channel, country, scores)
        ranked = [preferred, *(s.provider for s in scores if s.provider != preferred)]
        now = snap.redis_now()
        cooldown = self.settings.breaker_cooldown_seconds
        states = {
            name: snap.breakers.get((name, channel), Breaker()).effective(now, cooldown)
            for name in providers
        }
        closed = [name for name in ranked if states[name] == BreakerState.CLOSED]
        half_open = [name for name in ranked if states[name] == BreakerState.HALF_OPEN]
        cooling = [name for name in ranked if states[name] == BreakerState.OPEN]
        order = [*closed, *half_open, *cooling]
        first, why = order[0], ""
        if half_open and (not closed or self.rng.random() < self.settings.probe_share):
            first, why = half_open[0], "probe"
        elif len(closed) > 1 and self.rng.random() < self.settings.exploration_share:
            first, why = self.rng.choice(closed[1:]), "explore"
        if first != order[0]:
            order = [first, *(name for name in order if name != first)]
        by_name = {s.provider: s for s in scores}
        rank = {s.provider: n for n, s in enumerate(scores, start=1)}
        policy = self.settings.policy_for(country)
        reasons = tuple(
            {
                "mode": mode,
                "policy": policy,
                "country": country,
                "rank": rank[name],
                "score": round(by_name[name].value, 4),
                "preferred": name == preferred,
                "breaker": states[name],
                "explored": index == 0 and why == "explore",
                "probe": index == 0 and why == "probe",
            }
            for index, name in enumerate(order)
        )
        return Route(tuple(order), reasons)

    def scores(
        self, snap: Snapshot, channel: str, country: str, providers: Sequence[str]
    ) -> list[Score]:
        stats = {
            name: snap.stats[(name, channel, country)]
            for name in providers
            if (name, channel, country) in snap.stats
        }
        prices = {name: self.settings.price(name, channel, country) for name in providers}
        return score(providers, stats, self.settings.policy_for(country), prices)

    def _preferred(self, snap: Snapshot, channel: str, country: str, scores: list[Score]) -> str:
        """The provider preferred for (channel, country): the stored one, unless another
        scores ``switch_margin`` better (then that one is stored, and the change counted)."""
        best = scores[0]
        by_name = {s.provider: s for s in scores}
        leader = snap.leaders.get((channel, country))
        if (
            leader is not None
            and leader in by_name
            and (
                best.provider == leader
                or best.value <= by_name[leader].value * (1 + self.settings.switch_margin)
            )
        ):
            return leader
        self.store.prefer(channel, country, best.provider, changed=leader is not None)
        snap.leaders[(channel, country)] = best.provider
        return best.provider

    def reorder(self, request: FlowRequest) -> tuple[FlowRequest, dict[str, Any] | None]:
        """A request that said ``"channelOrder": "auto"``, its steps ordered by each channel's
        measured merit for its recipient's country, best first (equal merits, and no data,
        keep the caller's order; so does ``static`` mode); and, if anything moved, what was
        measured, for the timeline."""
        if self.settings.mode == "static" or len(request.steps) < 2:
            return request, None
        snap = self.snapshot()
        merits = [self.merit(snap, step.channel, step.data.country) for step in request.steps]
        order = sorted(range(len(merits)), key=lambda n: (-round(merits[n], 3), n))
        if order == sorted(order):
            return request, None
        note = {
            "caller_order": [step.channel for step in request.steps],
            "merits": [round(merit, 4) for merit in merits],
        }
        return replace(request, steps=tuple(request.steps[n] for n in order)), note

    def merit(self, snap: Snapshot, channel: str, country: str) -> float:
        """What a channel is worth for a country, by its best provider: the estimated
        delivered share times speed times conversion (each pulled towards a prior while data is few;
        conversion towards the country's share over every channel)."""
        rows = [
            snap.stats.get((name, channel, country), RouteStats())
            for name in self.configured(channel)
        ]
        everywhere = [row for (_, _, cc), row in snap.stats.items() if cc == country]
        codes = sum(row["codes"] for row in everywhere)
        pooled = sum(row["verified"] for row in everywhere) / codes if codes else 1.0
        return max(
            (
                estimated_delivery(row)
                * speed(row)
                * (row["verified"] + pooled * PRIOR_WEIGHT)
                / (row["codes"] + PRIOR_WEIGHT)
                for row in rows
            ),
            default=0.0,
        )

    def table(self) -> list[dict[str, Any]]:
        """The live statistics, one row per (provider, channel, country) measured in the
        window, with its score, rank and breaker: what ``GET /v1/routing/stats`` shows.
        ``counts`` are the window's as counted; the shares, latencies and the score weigh
        recent buckets more, as routing does."""
        snap = self.snapshot(fresh=True)
        now = snap.redis_now()
        cooldown = self.settings.breaker_cooldown_seconds
        rows = []
        pairs = sorted({(channel, country) for _, channel, country in snap.stats})
        for channel, country in pairs:
            providers = self.configured(channel)
            measured = sorted(p for p, c, cc in snap.stats if (c, cc) == (channel, country))
            candidates = [*providers, *(p for p in measured if p not in providers)]
            scores = self.scores(snap, channel, country, candidates)
            leader = snap.leaders.get((channel, country))
            for rank, scored in enumerate(scores, start=1):
                name = scored.provider
                stats = snap.stats.get((name, channel, country), RouteStats())
                counted = snap.totals.get((name, channel, country), RouteStats())
                breaker = snap.breakers.get((name, channel), Breaker())
                rows.append(
                    {
                        "provider": name,
                        "channel": channel,
                        "country": country,
                        "counts": {c: int(counted[c]) for c in sorted(counted.counts)},
                        "delivered_share": _rounded(stats.delivered_share),
                        "error_share": _rounded(stats.error_share),
                        "latency_p50_seconds": _rounded(stats.latency_quantile(0.5)),
                        "latency_p90_seconds": _rounded(stats.latency_quantile(0.9)),
                        "conversion": _rounded(stats.conversion),
                        "price": self.settings.price(name, channel, country),
                        "score": round(scored.value, 4),
                        "factors": scored.as_dict(),
                        "rank": rank,
                        "preferred": name == leader,
                        "configured": name in providers,
                        "breaker": breaker.effective(now, cooldown),
                    }
                )
        return rows


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 4)
