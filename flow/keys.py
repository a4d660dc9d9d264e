"""Every Redis key OTPflow uses, in one place. Each one carries a TTL (see the store)."""

from __future__ import annotations

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


def deadlines() -> str:
    """Sorted set: ``<flow_id>:<step>`` scored by the time its check is due.

    One key for all flows: entries leave when their step ends, and its TTL is refreshed on
    every write, so it holds in-flight steps only.
    """
    return f"{PREFIX}:deadlines"


def flow_keys(flow_id: str) -> list[str]:
    return [flow(flow_id), request(flow_id), events(flow_id), reports(flow_id)]
