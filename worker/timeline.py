"""Readable timelines for the terminal (``otpflow status``, ``otpflow demo``)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from rich.console import Console
from rich.table import Table

from otpflow.flow.store import FlowView

STATUS_STYLE = {
    "delivered": "bold green",
    "failed": "bold red",
    "cancelled": "yellow",
    "in_progress": "cyan",
    "queued": "dim",
}


def describe(event: dict[str, Any]) -> str:
    """One line for one timeline event."""
    kind = event.get("type")
    step = event.get("step")
    channel = event.get("channel", "")
    if kind == "flow_created":
        return f"flow created with {event.get('steps')} steps"
    if kind == "sent":
        return f"step {step} {channel}: accepted by {event.get('provider')}"
    if kind == "attempt_failed":
        return (
            f"step {step} {channel}: attempt {event.get('attempt')} via "
            f"{event.get('provider')} failed ({event.get('reason')})"
        )
    if kind == "send_error":
        return f"step {step} {channel}: could not be sent ({event.get('reason')})"
    if kind == "dlr":
        late = " (late, after the switch)" if event.get("late") else ""
        return f"step {step} {channel}: delivery report [b]{event.get('status')}[/b]{late}"
    if kind == "channel_switch":
        return (
            f"[yellow]switch[/] {channel} -> {event.get('to_channel')} "
            f"(step {step} {event.get('status')}: {event.get('reason')})"
        )
    if kind == "webhook":
        return f"switch webhook for step {step}: {event.get('result')}"
    if kind == "flow_delivered":
        return f"[bold green]flow delivered[/] by step {step}"
    if kind == "flow_failed":
        return f"[bold red]flow failed[/]: {event.get('reason')}"
    if kind == "flow_cancelled":
        return "[yellow]flow cancelled[/]"
    return str(kind)


def clock(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%H:%M:%S.%f")[:-3]


def print_event(console: Console, event: dict[str, Any], start: float) -> None:
    console.print(f"  [dim]{clock(event['ts'])} +{event['ts'] - start:6.2f}s[/]  {describe(event)}")


def print_flow(console: Console, view: FlowView, events: bool = True) -> None:
    style = STATUS_STYLE.get(view.status, "")
    console.print(f"flow [b]{view.flow_id}[/]: [{style}]{view.status}[/]")
    table = Table("#", "channel", "type", "timeout", "status", "provider", "dlr")
    for s in view.steps:
        table.add_row(
            str(s.index),
            s.channel,
            s.message_type or "-",
            f"{s.timeout}s",
            s.status,
            s.provider or "-",
            s.dlr or "-",
        )
    console.print(table)
    for event in view.events if events else []:
        print_event(console, event, view.created_at)
