"""The fraud guard's part of the store: the keys and arguments its screening takes in the
submit script, taking back what a flow never accepted counted, conversion, and the blocks an
operator lists and lifts. Every key name comes from :mod:`.keys`; see :mod:`.fraud` for the
rules."""

from __future__ import annotations

import json

from redis import Redis
from redis.commands.core import Script

from otpflow.config.fraud import FraudSettings
from otpflow.flow import keys
from otpflow.flow.fraud import Screening, bucket_seconds
from otpflow.flow.outcomes import text


class FraudStore:
    """Reached as ``FlowStore.fraud``: the same Redis and the same scripts."""

    def __init__(self, redis: Redis, scripts: dict[str, Script]) -> None:
        self.redis = redis
        self._scripts = scripts

    def arguments(
        self, workspace: str, flow_id: str, screening: Screening | None
    ) -> tuple[list[str], list[str | int | float]]:
        """The fraud guard's keys and arguments in the submit script (fraud.lua's order)."""
        if screening is None:
            return [], []
        rules = screening.rules
        fraud_keys = [keys.fraud_blocks(workspace), keys.metrics()]
        fraud_args: list[str | int | float] = [
            rules.mode,
            flow_id,
            rules.block_seconds,
            rules.prefix_limit,
            rules.prefix_window_seconds,
            rules.min_conversion,
            rules.min_volume,
            rules.conversion_window_seconds,
            screening.bucket_seconds,
        ]
        for one in screening.recipients:
            prefix, country = one.prefix_scope, one.country_scope
            fraud_keys += [
                keys.fraud_hits(workspace, prefix),
                keys.fraud_block(workspace, prefix),
                keys.fraud_conversion(workspace, prefix),
                keys.fraud_pending(workspace, prefix),
                keys.fraud_block(workspace, country),
                keys.fraud_rate(workspace, country),
                keys.fraud_conversion(workspace, country),
                keys.fraud_pending(workspace, country),
            ]
            fraud_args += [
                one.prefix,
                prefix,
                one.facts.region,
                int(one.exempt),
                one.static_reason or "",
                one.country_limit,
                one.chance_seconds,
            ]
        return fraud_keys, fraud_args

    def release(self, flow_id: str, workspace: str, screening: Screening) -> None:
        """Undo what :meth:`FlowStore.submit` counted of a flow for the fraud guard, for a
        flow that was never accepted (its hour's count goes down by one, and away at zero)."""
        hour = str(int(self.redis.time()[0]) // 3600)
        counted = [one for one in screening.recipients if not one.exempt]
        pipe = self.redis.pipeline(transaction=False)
        for one in screening.recipients:
            for scope in (one.prefix_scope, one.country_scope):
                pipe.zrem(keys.fraud_pending(workspace, scope), flow_id)
        for one in counted:
            pipe.zrem(keys.fraud_hits(workspace, one.prefix_scope), flow_id)
            pipe.hincrby(keys.fraud_rate(workspace, one.country_scope), hour, -1)
        results = pipe.execute()
        # after two removals per recipient, each counted one's (removal, new count)
        left = results[2 * len(screening.recipients) + 1 :: 2]
        for one, count in zip(counted, left, strict=True):
            if int(count) <= 0:
                self.redis.hdel(keys.fraud_rate(workspace, one.country_scope), hour)

    def converted(self, flow_id: str, fraud: FraudSettings) -> bool:
        """Count a flow's code as verified for the fraud guard's conversion (OTPflow's verify,
        or the caller's feedback); True the first time, False after or for a flow unknown."""
        raw = self.redis.hmget(keys.flow(flow_id), ["workspace", "fraud_scopes"])
        if raw[0] is None:
            return False
        workspace = text(raw[0])
        rules = fraud.for_workspace(workspace)
        scope_keys = [
            key
            for scope in json.loads(raw[1] or b"[]")
            for key in (
                keys.fraud_conversion(workspace, scope),
                keys.fraud_pending(workspace, scope),
            )
        ]
        done = self._scripts["converted"](
            keys=[keys.flow(flow_id), *scope_keys],
            args=[flow_id, bucket_seconds(rules), rules.conversion_window_seconds],
        )
        return bool(done)

    def blocks(self, workspace: str) -> list[dict[str, str]]:
        """A workspace's blocks in force, soonest to end first."""
        index = keys.fraud_blocks(workspace)
        now = self.redis.time()[0]
        self.redis.zremrangebyscore(index, "-inf", now)
        ids = [text(m) for m in self.redis.zrange(index, 0, -1) if isinstance(m, bytes | str)]
        pipe = self.redis.pipeline(transaction=False)
        for scope in ids:
            pipe.hgetall(keys.fraud_block(workspace, scope))
        found = []
        for raw in pipe.execute():
            if raw:  # else lifted, or overwritten by a later block of the same scope
                found.append({text(k): text(v) for k, v in raw.items()})
        return found

    def lift(self, workspace: str, scope: str) -> bool:
        """Lift a block: its scope starts afresh (its velocity and conversion counts go too,
        or the next flow would block it again). False if there was none."""
        pipe = self.redis.pipeline(transaction=True)
        pipe.delete(keys.fraud_block(workspace, scope))
        pipe.zrem(keys.fraud_blocks(workspace), scope)
        pipe.delete(
            keys.fraud_hits(workspace, scope),
            keys.fraud_conversion(workspace, scope),
            keys.fraud_pending(workspace, scope),
        )
        deleted, *_ = pipe.execute()
        return bool(deleted)
