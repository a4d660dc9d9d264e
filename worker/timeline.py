"""Readable timelines for the terminal (``otpflow send``, ``otpflow status``, ``otpflow demo``).

Everything is built as rich ``Text`` and ``Table`` objects, never as markup strings, so a
provider's error message with brackets in it prints as it is. Times are relative to the flow's
creation (``+1.23s``); colors follow the outcome (green delivered, red failed, yellow switched or
timed out, cyan in flight) and disappear with ``NO_COLOR`` or a dumb terminal.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from rich import box
from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text

from otpflow.flow.store import FlowView, StepView

FLOW_STYLE = {
    "delivered": "bold green",
    "verified": "bold green",
    "failed": "bold red",
    "cancelled": "yellow",
    "in_progress": "cyan",
    "queued": "dim",
}
STEP_STYLE = {
    "delivered": "bold green",
    "failed": "bold red",
    "error": "bold red",
    "timeout": "yellow",
    "sent": "cyan",
    "sending": "cyan",
    "pending": "dim",
    "skipped": "dim",
}
REPORT_STYLE = {"delivered": "green", "read": "green", "sent": "cyan", "accepted": "cyan"}
# a flow still queued after this long is probably waiting for a worker nobody started
NO_WORKER_HINT_SECONDS = 5.0


def relative(ts: float | None, start: float) -> str:
    return "-" if ts is None else f"+{ts - start:.2f}s"


def _report_style(status: str) -> str:
    return REPORT_STYLE.get(status, "red")


def describe(event: dict[str, Any]) -> Text:
    """One line for one timeline event."""
    kind = event.get("type")
    step = event.get("step")
    at = f"step {step} {event.get('channel', '')}: "
    if kind == "flow_created":
        return Text(f"flow created with {event.get('steps')} steps")
    if kind == "sent":
        return Text.assemble(at, ("accepted by ", "cyan"), (str(event.get("provider")), "cyan"))
    if kind == "attempt_failed":
        return Text.assemble(
            at,
            (f"attempt {event.get('attempt')} via {event.get('provider')} failed", "yellow"),
            f" ({event.get('reason')})",
        )
    if kind == "send_error":
        return Text.assemble(at, ("could not be sent", "red"), f" ({event.get('reason')})")
    if kind == "dlr":
        status = str(event.get("status"))
        late = " (late, after the step had ended)" if event.get("late") else ""
        return Text.assemble(
            at, "delivery report ", (status, f"bold {_report_style(status)}"), late
        )
    if kind == "channel_switch":
        return Text.assemble(
            ("switch", "bold yellow"),
            f" {event.get('channel')} -> {event.get('to_channel')} "
            f"(step {step} {event.get('status')}: {event.get('reason')})",
        )
    if kind == "webhook":
        return _webhook(event)
    if kind == "relay":
        return Text(
            f"step {step}: {event.get('status')} report relayed to the post_back_url: "
            f"{event.get('result')}"
        )
    if kind == "flow_delivered":
        late = " (late report)" if event.get("late") else ""
        return Text.assemble((f"flow delivered by step {step}", "bold green"), late)
    if kind == "flow_failed":
        return Text.assemble(("flow failed", "bold red"), f": {event.get('reason')}")
    if kind == "flow_cancelled":
        return Text("flow cancelled", style="yellow")
    if kind == "flow_verified":
        return Text("code verified: flow verified", style="bold green")
    if kind == "verify_failed":
        return Text(f"wrong code entered ({event.get('attempts_left')} attempts left)", "yellow")
    return Text(str(kind))


def _webhook(event: dict[str, Any]) -> Text:
    name = (
        f"switch webhook for step {event.get('step')}"
        if event.get("event") == "channel_switch"
        else f"{event.get('event')} webhook"
    )
    result = str(event.get("result"))
    attempt = event.get("attempt")
    if result == "delivered":
        code = f" (HTTP {event['code']})" if event.get("code") else ""
        return Text.assemble(f"{name}: ", ("delivered", "green"), code)
    if result == "retrying":
        return Text.assemble(
            f"{name}: ",
            (f"attempt {attempt} failed", "yellow"),
            f" ({event.get('reason')}), retrying",
        )
    if result == "gave_up":
        return Text.assemble(
            f"{name}: ", (f"gave up after attempt {attempt}", "red"), f" ({event.get('reason')})"
        )
    return Text.assemble(f"{name}: ", (result, "red"), f" ({event.get('reason')})")


def event_line(event: dict[str, Any], start: float) -> Text:
    return Text.assemble("  ", (f"{relative(event['ts'], start):>9}", "dim"), "  ", describe(event))


def step_reason(step: StepView) -> str:
    """Why a step is where it is, in words."""
    if step.reason:
        return step.reason
    if step.status == "failed":
        return f"reported {step.dlr or 'failed'}"
    if step.status == "timeout":
        return f"no delivered report in {step.timeout} s"
    if step.status == "skipped":
        return "not needed"
    if step.status == "sent":
        return "waiting for a delivery report"
    if step.status == "sending":
        return "sending to the provider"
    return ""


def summary(view: FlowView, now: float | None = None) -> Text:
    """The flow's id and outcome in one line."""
    now = time.time() if now is None else now
    status = view.status
    line = Text.assemble("flow ", (view.flow_id, "bold"), "  ")
    took = f" after {(view.ended_at or view.updated_at) - view.created_at:.2f} s"
    if status == "delivered" and view.delivered_step is not None:
        channel = view.steps[view.delivered_step].channel
        line.append(f"delivered by step {view.delivered_step} ({channel})", FLOW_STYLE[status])
        line.append(took)
    elif status in ("failed", "cancelled"):
        line.append(status, FLOW_STYLE[status])
        line.append((f": {view.reason}" if view.reason else "") + took)
    elif status == "verified":
        line.append("verified", FLOW_STYLE[status])
        line.append(": the code was entered" + took)
    elif status == "in_progress" and view.current < len(view.steps):
        step = view.steps[view.current]
        line.append("in progress", FLOW_STYLE[status])
        line.append(f": step {step.index} {step.channel} {step.status}")
    elif status == "queued":
        line.append("queued", FLOW_STYLE[status])
        line.append(": waiting for a worker to take step 0")
        if now - view.created_at > NO_WORKER_HINT_SECONDS:
            line.append(" (is `otpflow worker` running?)", "yellow")
    else:
        line.append(status, FLOW_STYLE.get(status, ""))
    return line


def steps_table(view: FlowView) -> Table:
    table = Table(box=box.SIMPLE_HEAD, header_style="bold", show_edge=False)
    for column in ("#", "channel", "provider", "status", "sent", "ended", "timeout", "report"):
        table.add_column(column, no_wrap=True)
    table.add_column("reason")
    start = view.created_at
    for s in view.steps:
        table.add_row(
            str(s.index),
            s.channel + (f" ({s.message_type})" if s.message_type else ""),
            s.provider or "-",
            Text(s.status, STEP_STYLE.get(s.status, "")),
            relative(s.accepted_at, start),
            relative(s.ended_at, start),
            f"{s.timeout}s",
            Text(s.dlr, _report_style(s.dlr)) if s.dlr else "-",
            step_reason(s),
        )
    return table


def render_flow(view: FlowView, now: float | None = None) -> RenderableType:
    """The flow's outcome, its steps table and its timeline."""
    created = datetime.fromtimestamp(view.created_at, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    parts: list[RenderableType] = [
        summary(view, now),
        Text(f"created {created} in workspace {view.workspace}", "dim"),
        Text(),
        steps_table(view),
    ]
    if view.events:
        parts += [Text(), Text("timeline", "bold")]
        parts += [event_line(event, view.created_at) for event in view.events]
    return Group(*parts)


def print_flow(console: Console, view: FlowView) -> None:
    console.print(render_flow(view))
