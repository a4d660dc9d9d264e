"""Times as the API and the webhooks write them."""

from __future__ import annotations

from datetime import UTC, datetime


def iso(ts: float) -> str:
    """A Unix time as ISO 8601 in UTC, to the millisecond, with a ``Z``."""
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
