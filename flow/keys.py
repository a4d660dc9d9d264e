"""Every Redis key OTPflow uses, in one place. Each one carries a TTL (see the store).

A script is handed every key it touches, but for those named by Redis's clock (a statistics
bucket) or by what it read (a flow id): for them :func:`lua_builders` renders a Lua function
made from the function here.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

PREFIX = "otpflow"


def flow(flow_id: str) -> str:
    """Hash: flow fields and per-step fields ``s<i>:<name>``."""
    return f"{PREFIX}:flow:{flow_id}"


def request(flow_id: str) -> str:
    """String: the validated request as JSON (holds recipients and text; never logged)."""
    return f"{PREFIX}:flow:{flow_id}:request"


def events(flow_id: str) -> str:
    """List: the flow's timeline, one JSON event per entry."""
    return f"{PREFIX}:flow:{flow_id}:events"


def reports(flow_id: str) -> str:
    """List: raw provider reports kept for relaying to the caller's own post_back_url."""
    return f"{PREFIX}:flow:{flow_id}:reports"


def code(flow_id: str) -> str:
    """String: an HMAC of the flow's code (never the code: see flow.keyring), expiring with
    the code's ``ttl``."""
    return f"{PREFIX}:flow:{flow_id}:code"


def confirmed(flow_id: str) -> str:
    """List: a wake-up for the worker whose first send came before the producer confirmed the
    flow, pushed by the confirmation (expires within a minute)."""
    return f"{PREFIX}:flow:{flow_id}:confirmed"


# Per-recipient keys are named by ``recipient``: Keyring.recipient_id(address), an HMAC of the
# normalised address, so key names carry no phone number or email address, and none can be
# recovered from them by enumerating numbers.


def recipient_rate(workspace: str, recipient: str) -> str:
    """Sorted set: flows started to one recipient in the limit's window (expires with it)."""
    return f"{PREFIX}:limit:recipient:{workspace}:{recipient}"


def recipient_messages(workspace: str, recipient: str) -> str:
    """Hash: flow id -> messages that flow may send one recipient, for the flows in its
    :func:`recipient_rate` window (expires with it)."""
    return recipient_rate(workspace, recipient) + ":messages"


def active(workspace: str, recipient: str) -> str:
    """String: the flow running for one recipient (expires when the flow must have ended)."""
    return f"{PREFIX}:active:{workspace}:{recipient}"


def verify_failures(workspace: str, recipient: str) -> str:
    """Counter: wrong codes entered for one recipient, across its flows, in the budget's
    window (expires with it)."""
    return f"{PREFIX}:limit:verify:{workspace}:{recipient}"


def workspace_rate(workspace: str, second: int) -> str:
    """Counter: API requests of one workspace in one second."""
    return f"{PREFIX}:limit:workspace:{workspace}:{second}"


def idempotency(workspace: str, key: str) -> str:
    """String: ``<body hash> <request id>`` for an Idempotency-Key, kept 24 h."""
    return f"{PREFIX}:idem:{workspace}:{hashlib.sha256(key.encode()).hexdigest()[:32]}"


# The fraud guard's keys are named by ``scope``: ``prefix-<HMAC of the prefix>`` or
# ``country-<ISO code>`` (see otpflow.flow.fraud), per workspace.


def fraud_hits(workspace: str, scope: str) -> str:
    """Sorted set: flows to one prefix in the velocity window, scored by start (expires with it)."""
    return f"{PREFIX}:fraud:{workspace}:{scope}:hits"


def fraud_block(workspace: str, scope: str) -> str:
    """Hash: a prefix's or a country's block, while it holds (its TTL is the block's)."""
    return f"{PREFIX}:fraud:{workspace}:{scope}:block"


def fraud_rate(workspace: str, scope: str) -> str:
    """Hash: hour -> flows to one country that hour, for its hourly cap (expires in 2 h)."""
    return f"{PREFIX}:fraud:{workspace}:{scope}:rate"


def fraud_conversion(workspace: str, scope: str) -> str:
    """Hash: ``c:<bucket>`` codes whose chance ended in a bucket of the conversion window,
    ``v:<bucket>`` those verified (expires a window after its last write)."""
    return f"{PREFIX}:fraud:{workspace}:{scope}:conversion"


def fraud_pending(workspace: str, scope: str) -> str:
    """Sorted set: flows whose code still has its chance, scored by when that ends."""
    return f"{PREFIX}:fraud:{workspace}:{scope}:pending"


def fraud_blocks(workspace: str) -> str:
    """Sorted set: a workspace's blocks by scope, scored by when each ends (the list the
    operator reads; a member whose block key has gone is stale and skipped)."""
    return f"{PREFIX}:fraud:{workspace}:blocks"


# Adaptive routing (see otpflow.flow.routing): statistics per provider, channel and country,
# in buckets of a sliding window; the circuit breakers; the provider each channel prefers.


def routing_stats(bucket: int) -> str:
    """Hash: one bucket of the routing statistics (``<provider>|<channel>|<country>|<counter>``
    -> count); ``bucket`` is Redis time // the bucket's width. Expires a window after it."""
    return f"{PREFIX}:routing:stats:{bucket}"


def routing_breakers() -> str:
    """Hash: each (provider, channel)'s circuit breaker, ``<provider>|<channel>|<field>``
    (state, since, opened, ok, err, window, probes); expires a day after its last write."""
    return f"{PREFIX}:routing:breakers"


def routing_leaders() -> str:
    """Hash: ``<channel>|<country>`` -> the provider preferred there (it changes only when
    another scores clearly better); expires a window after its last change."""
    return f"{PREFIX}:routing:leaders"


# The support dashboard (otpflow.api.dashboard): flows found by recipient, a workspace's latest
# flows, delivery counts in ten-minute buckets, and sign-in sessions.


def dashboard_recipient(workspace: str, recipient: str) -> str:
    """Sorted set: a recipient's flows (``recipient``: Keyring.recipient_id), scored by when
    each was created; expires with the flows."""
    return f"{PREFIX}:dash:{workspace}:recipient:{recipient}"


def dashboard_recent(workspace: str) -> str:
    """Sorted set: a workspace's latest flows (a few hundred), scored by when each was created."""
    return f"{PREFIX}:dash:{workspace}:recent"


def dashboard_stats(workspace: str, bucket: int) -> str:
    """Hash: a workspace's delivery counts in one ten-minute bucket (``bucket``: Redis time //
    600), ``<what>|<channel>|<provider>|<country>`` -> count; kept eight days."""
    return f"{PREFIX}:dash:{workspace}:stats:{bucket}"


def dashboard_signin_failures(workspace: str, user_hash: str) -> str:
    """Counter: wrong sign-ins to one dashboard user (``user_hash``: a hash of its name) in
    the lockout's window (expires with it)."""
    return f"{PREFIX}:dash:{workspace}:signin:{user_hash}"


def dashboard_session(token_hash: str) -> str:
    """Hash: one signed-in dashboard session (workspace, user, role, CSRF token), named by a
    hash of its cookie; expires with the session."""
    return f"{PREFIX}:dash:session:{token_hash}"


def timers() -> str:
    """Sorted set: every timer, scored by when it is due (Redis time), taken by the workers'
    timer loop. A step's timer is ``<flow_id>:<step>``; a task to publish later (a retry with
    backoff) is ``["<task name>", [args]]``.

    One key for all flows: entries leave when their step ends or their task is published, and
    its TTL is refreshed on every write, so it holds pending work only.
    """
    return f"{PREFIX}:timers"


def claimed_through() -> str:
    """String: the latest queue time (Redis time) of any step whose send has been claimed.

    Sends are taken first in, first out: a step still unclaimed although one queued a grace
    period after it was claimed has lost its send (with a killed worker); one not yet overtaken
    is waiting its turn behind a backlog, and sending it again would only grow the backlog.
    """
    return f"{PREFIX}:claimed-through"


def metrics() -> str:
    """Hash: every counter and histogram bucket, shared by all processes (see flow.metrics)."""
    return f"{PREFIX}:metrics"


def demo_database() -> str:
    """String, no TTL: this Redis database holds an ``otpflow demo``'s data (it empties it)."""
    return f"{PREFIX}:demo:database"


def demo_lease() -> str:
    """String: a demo runs in this database now (refreshed while it runs; expires if it dies)."""
    return f"{PREFIX}:demo:lease"


def flow_keys(flow_id: str) -> list[str]:
    return [
        flow(flow_id),
        request(flow_id),
        events(flow_id),
        reports(flow_id),
        code(flow_id),
        confirmed(flow_id),
    ]


# Keys a script names itself, from Redis's clock (a statistics bucket) or from what it read
# (the flow of a code whose chance has ended, for the fraud guard): the Lua function, the
# function here it is made from, and its parameters.
LUA_BUILT: tuple[tuple[str, Callable[..., str], tuple[str, ...]], ...] = (
    ("routing_stats_key", routing_stats, ("bucket",)),
    ("dashboard_stats_key", dashboard_stats, ("workspace", "bucket")),
    ("flow_key", flow, ("flow_id",)),
)


def lua_builders() -> str:
    """Lua functions naming the :data:`LUA_BUILT` keys, made by calling each function here
    with markers for its parameters: the key's format is spelled only above."""
    return "".join(_lua_builder(name, build, params) for name, build, params in LUA_BUILT)


def _lua_builder(name: str, build: Callable[..., str], params: tuple[str, ...]) -> str:
    built = build(*(f"\x00{param}\x00" for param in params)).split("\x00")
    # literal, parameter, literal, ...: each parameter must reach the key as it came, and
    # each literal be one Lua can quote as it is
    literals = built[::2]
    if tuple(built[1::2]) != params or any(set(part) & set("'\\\n") for part in literals):
        raise ValueError(f"{build.__name__} cannot be rendered as Lua ({name})")
    parts = [f"'{part}'" if n % 2 == 0 else part for n, part in enumerate(built) if part]
    return f"local function {name}({', '.join(params)}) return {' .. '.join(parts)} end\n"
