"""What the dashboard's pages show, built from the store: flows in lists (masked), one flow's
story, and delivery at a glance. Plain dicts for the templates; no recipient in clear, no
message text and no code ever reach them."""

from __future__ import annotations

import time
from typing import Any

from otpflow.api.schemas import block_json
from otpflow.flow.dashboard_store import DashboardStore
from otpflow.flow.routing import RouteStats
from otpflow.flow.store import FlowStore
from otpflow.flow.story import duration, plain, relative
from otpflow.producers.client import OtpflowClient

STATUS_TEXT = {
    "queued": "queued",
    "in_progress": "in progress",
    "delivered": "delivered",
    "failed": "failed",
    "cancelled": "cancelled",
    "verified": "verified",
    "blocked": "blocked (fraud guard)",
}


def when(ts: float | str | None) -> str:
    if ts in (None, ""):
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(float(ts)))


def flow_rows(store: DashboardStore, flow_ids: list[str], workspace: str) -> list[dict[str, str]]:
    """One row per flow of this workspace (others are left out: they do not exist here)."""
    rows = []
    for fields in store.summaries(flow_ids):
        if fields.get("workspace") != workspace:
            continue
        steps = int(fields.get("steps", "0"))
        status = fields.get("status", "")
        rows.append(
            {
                "id": fields["id"],
                "started": when(fields.get("created_at")),
                "recipient": fields.get("s0:to", "-"),
                "channels": " → ".join(fields.get(f"s{i}:channel", "?") for i in range(steps)),
                "status": status,
                "status_text": STATUS_TEXT.get(status, status),
            }
        )
    return rows


def flow_context(store: FlowStore, flow_id: str, workspace: str) -> dict[str, Any] | None:
    """One flow's story for its page, or None if it is not this workspace's."""
    view = store.get(flow_id)
    if view is None or view.workspace != workspace:
        return None
    (fields,) = store.dashboard.summaries([flow_id]) or [{}]
    start = view.created_at
    return {
        "id": view.flow_id,
        "status": view.status,
        "status_text": STATUS_TEXT.get(view.status, view.status),
        "reason": view.reason,
        "ended": view.terminal,
        "started": when(start),
        "recipient": fields.get("s0:to", "-"),
        "steps": [
            {
                "index": step.index,
                "channel": step.channel,
                "provider": step.provider,
                "status": step.status,
                "sent": relative(step.accepted_at, start),
                "ended": relative(step.ended_at, start),
                "dlr": step.dlr,
            }
            for step in view.steps
        ],
        "events": [
            {
                "at": relative(event.get("ts"), start),
                "kind": event.get("type"),
                "text": plain(event),
            }
            for event in view.events
        ],
    }


def _rows(counts: dict[str, int], by: int) -> list[dict[str, Any]]:
    """Sent, delivered, switches and time to deliver per channel (by=1), provider (2) or
    country (3)."""
    table: dict[str, dict[str, Any]] = {}
    for name, value in counts.items():
        parts = name.split("|")
        if parts[0] in ("sent", "delivered", "switch") and len(parts) == 4:
            row = table.setdefault(parts[by], {"sent": 0, "delivered": 0, "switch": 0})
            row[parts[0]] += value
    rows = []
    for label, row in sorted(table.items()):
        share = row["delivered"] / row["sent"] if row["sent"] else None
        latency = _latency(counts, by, label)
        rows.append(
            {
                "label": label or "-",
                "sent": row["sent"],
                "delivered": row["delivered"],
                "switches": row["switch"],
                "share": round(100 * share, 1) if share is not None else 0,
                "share_text": f"{share:.0%}" if share is not None else "-",
                "p50": _seconds(latency.latency_quantile(0.5)) if latency else "-",
                "p95": _seconds(latency.latency_quantile(0.95)) if latency else "-",
            }
        )
    return rows


def _latency(counts: dict[str, int], by: int = 0, label: str = "") -> RouteStats:
    """Time-to-deliver buckets (``ttd|<channel>|<provider>|<country>|<n>``) of one channel
    (by=1), provider (2) or country (3); of all with by=0."""
    stats = RouteStats()
    for name, value in counts.items():
        parts = name.split("|")
        if parts[0] == "ttd" and len(parts) == 5 and (by == 0 or parts[by] == label):
            stats.add(f"lat{parts[4]}", value)
    return stats


def _seconds(value: float | None) -> str:
    return "-" if value is None else duration(value)


def analytics_context(client: OtpflowClient, workspace: str, seconds: int) -> dict[str, Any]:
    counts = client.store.dashboard.counts(workspace, seconds)
    charts: list[dict[str, Any]] = [
        {"id": "by-channel", "title": "By channel", "by": "Channel", "rows": _rows(counts, 1)},
        {"id": "by-provider", "title": "By provider", "by": "Provider", "rows": _rows(counts, 2)},
        {"id": "by-country", "title": "By country", "by": "Country", "rows": _rows(counts, 3)},
    ]
    everything = _latency(counts)
    sent = sum(row["sent"] for row in charts[0]["rows"])
    delivered = sum(row["delivered"] for row in charts[0]["rows"])
    routing = [
        {
            "channel": row["channel"],
            "country": row["country"],
            "provider": row["provider"],
            "preferred": row["preferred"],
            "score": f"{row['score']:.3f}",
            "delivered": "-" if row["delivered_share"] is None else f"{row['delivered_share']:.0%}",
            "breaker": row["breaker"].replace("_", "-"),
        }
        for row in client.router.table()
    ]
    return {
        "charts": charts,
        "chart_data": [
            {
                "id": chart["id"],
                "labels": [row["label"] for row in chart["rows"]],
                "shares": [row["share"] for row in chart["rows"]],
                "switches": [row["switches"] for row in chart["rows"]],
            }
            for chart in charts
        ],
        "totals": {
            "sent": sent,
            "delivered": delivered,
            "share": f"{delivered / sent:.0%}" if sent else "-",
            "switches": sum(row["switches"] for row in charts[0]["rows"]),
            "p50": _seconds(everything.latency_quantile(0.5)),
            "p95": _seconds(everything.latency_quantile(0.95)),
        },
        "blocks": [block_json(raw) for raw in client.store.fraud.blocks(workspace)],
        "routing": routing,
    }
