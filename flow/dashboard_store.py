"""The support dashboard's part of the store (``FlowStore.dashboard``): the keyed index that
finds a recipient's flows, a workspace's latest flows, the delivery counts the transitions
keep in ten-minute buckets (``lua/dashboard.lua``), and sign-in sessions."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from typing import Any

from redis import Redis

from otpflow.flow import keys
from otpflow.flow.keyring import Keyring
from otpflow.flow.outcomes import text

BUCKET_SECONDS = 600
STATS_TTL_SECONDS = 8 * 24 * 3600
# a workspace's latest flows kept for the dashboard's first page
RECENT_FLOWS = 500
# the most flows a search by recipient shows
FOUND_FLOWS = 50


def lua_prelude() -> str:
    """The constants ``dashboard.lua`` needs: the bucket's width, the counts' TTL (a bucket's
    key is named by ``dashboard_stats_key``, :func:`keys.lua_builders`)."""
    return f"""
local DASHBOARD_BUCKET_SECONDS = {BUCKET_SECONDS}
local DASHBOARD_STATS_TTL = {STATS_TTL_SECONDS}
"""


class DashboardStore:
    """The dashboard's reads, its index writes and its sessions; one per process."""

    def __init__(self, redis: Redis, keyring: Keyring, ttl_seconds: int) -> None:
        self.redis = redis
        self.keyring = keyring
        self.ttl_seconds = ttl_seconds

    def index(self, workspace: str, flow_id: str, recipients: Iterable[str]) -> None:
        """Find a new flow later by each of its recipients (as limits count them: E.164, a
        folded email address), named in keys by their HMAC; and list it as recent."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.time()
        seconds, micros = pipe.execute()[0]
        now = seconds + micros / 1e6
        for recipient in set(recipients):
            key = keys.dashboard_recipient(workspace, self.keyring.recipient_id(recipient))
            pipe.zadd(key, {flow_id: now})
            pipe.expire(key, self.ttl_seconds)
        recent = keys.dashboard_recent(workspace)
        pipe.zadd(recent, {flow_id: now})
        pipe.zremrangebyrank(recent, 0, -RECENT_FLOWS - 1)
        pipe.expire(recent, self.ttl_seconds)
        pipe.execute()

    def find(self, workspace: str, recipient: str) -> list[str]:
        """A recipient's flows in this workspace, newest first (an exact, keyed lookup)."""
        key = keys.dashboard_recipient(workspace, self.keyring.recipient_id(recipient))
        return [text(m) for m in self.redis.zrevrange(key, 0, FOUND_FLOWS - 1)]

    def recent(self, workspace: str, count: int = 50) -> list[str]:
        return [
            text(m) for m in self.redis.zrevrange(keys.dashboard_recent(workspace), 0, count - 1)
        ]

    def summaries(self, flow_ids: list[str]) -> list[dict[str, str]]:
        """For lists: each flow's workspace, status, times and steps' channels, providers and
        masked recipients (what ``FlowStore.create`` wrote as ``s<i>:to``)."""
        pipe = self.redis.pipeline(transaction=False)
        for flow_id in flow_ids:
            pipe.hgetall(keys.flow(flow_id))
        found = []
        for flow_id, raw in zip(flow_ids, pipe.execute(), strict=True):
            if raw:
                fields = {text(k): text(v) for k, v in raw.items()}
                found.append({"id": flow_id, **fields})
        return found

    def counts(self, workspace: str, seconds: int) -> dict[str, int]:
        """The delivery counts of the last ``seconds`` (whole buckets), summed."""
        now = int(self.redis.time()[0])
        current = now // BUCKET_SECONDS
        first = (now - seconds) // BUCKET_SECONDS + 1
        pipe = self.redis.pipeline(transaction=False)
        for bucket in range(first, current + 1):
            pipe.hgetall(keys.dashboard_stats(workspace, bucket))
        totals: dict[str, int] = {}
        for raw in pipe.execute():
            for name, value in raw.items():
                totals[text(name)] = totals.get(text(name), 0) + int(value)
        return totals

    # -- sign-in -----------------------------------------------------------------------------

    def signin_failures(self, workspace: str, user: str) -> int:
        return int(self.redis.get(self._failures(workspace, user)) or 0)

    def signin_failed(self, workspace: str, user: str, window_seconds: int) -> None:
        """Count a wrong sign-in; the count lapses ``window_seconds`` after the first."""
        key = self._failures(workspace, user)
        pipe = self.redis.pipeline(transaction=True)
        pipe.incr(key)
        pipe.expire(key, window_seconds, nx=True)
        pipe.execute()

    def signin_succeeded(self, workspace: str, user: str) -> None:
        self.redis.delete(self._failures(workspace, user))

    @staticmethod
    def _failures(workspace: str, user: str) -> str:
        return keys.dashboard_signin_failures(
            workspace, hashlib.sha256(user.encode()).hexdigest()[:32]
        )

    # -- sessions --------------------------------------------------------------------------

    def open_session(self, token_hash: str, fields: Mapping[str, str], seconds: int) -> None:
        key = keys.dashboard_session(token_hash)
        pipe = self.redis.pipeline(transaction=True)
        pipe.hset(key, mapping=dict(fields))  # type: ignore[arg-type]
        pipe.expire(key, seconds)
        pipe.execute()

    def session(self, token_hash: str) -> dict[str, Any] | None:
        raw = self.redis.hgetall(keys.dashboard_session(token_hash))
        return {text(k): text(v) for k, v in raw.items()} if raw else None

    def close_session(self, token_hash: str) -> None:
        self.redis.delete(keys.dashboard_session(token_hash))
