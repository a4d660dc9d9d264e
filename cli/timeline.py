"""Readable timelines for the terminal (``otpflow send``, ``otpflow status``, ``otpflow demo``).

Everything is built as rich ``Text`` and ``Table`` objects, never as markup strings, so a
provider's error message with brackets in it prints as it is. Times are relative to the flow's
creation and short (``+1.23s``, ``+32.5s``, ``+126s``, ``+16m40s``); colors follow the outcome
(green delivered, red failed, yellow switched or timed out, cyan in flight) and disappear with
``NO_COLOR``, a dumb terminal or a pipe.

The layout follows the width it is given, 80 columns included (a pipe gets 80): the steps table
splits in two (who and what, then when and why) when one table would squeeze the reason, every
table keeps its ``#`` column, a long reason wraps inside its column, the summary breaks between
its parts and never inside a number, and a timeline event that wraps keeps its indent.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from rich import box
from rich.console import Console, ConsoleOptions, Group, RenderableType, RenderResult
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

from otpflow.flow import story
from otpflow.flow.story import relative, report_tone
from otpflow.flow.views import FlowView, StepView

FLOW_STYLE = {
    "delivered": "bold green",
    "verified": "bold green",
    "failed": "bold red",
    "cancelled": "yellow",
    "blocked": "bold red",
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
# a flow still queued after this long is probably waiting for a worker nobody started
NO_WORKER_HINT_SECONDS = 5.0


def describe(event: dict[str, Any]) -> Text:
    """One line for one timeline event (its words: otpflow.flow.story)."""
    return Text.assemble(*story.describe(event))


def event_line(event: dict[str, Any], start: float) -> Table:
    """One timeline event: its time, then what happened; a line that wraps stays indented
    under the text, so the times stay a column."""
    line = Table.grid(padding=(0, 0, 0, 2))
    line.add_column(width=EVENT_TIME_WIDTH, justify="right", no_wrap=True, style="dim")
    line.add_column(overflow="fold")
    line.add_row(relative(event["ts"], start), describe(event))
    return line


EVENT_TIME_WIDTH = 9


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


class Parts:
    """Short texts, each after its separator (``"  "``, ``": "``), on one line when they fit,
    else a new line before the part that does not (the separator's punctuation stays at the end
    of the line): a line breaks between parts, or between the words of a part too long for a
    line, never inside a number or an id. ``plain`` is the one-line text."""

    def __init__(self, *parts: tuple[str, Text]) -> None:
        self.parts = [(sep, part) for sep, part in parts if part]

    @property
    def plain(self) -> str:
        return "".join(sep + part.plain for sep, part in self.parts).lstrip()

    def lines(self, width: int) -> list[Text]:
        lines: list[Text] = []
        line = Text()
        for sep, part in self.parts:
            if line and line.cell_len + len(sep) + part.cell_len > width:
                line.append(sep.rstrip())
                lines.append(line)
                line = Text()
            if line:
                line.append(sep)
            line.append_text(part)
        return [*lines, line] if line else lines

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        yield from self.lines(options.max_width)

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        longest = max((part.cell_len for _, part in self.parts), default=1)
        return Measurement(min(longest, options.max_width), min(len(self.plain), options.max_width))


def summary(view: FlowView, now: float | None = None) -> Parts:
    """The flow's id and outcome: one line when it fits, else broken between its parts."""
    now = time.time() if now is None else now
    status = view.status
    style = FLOW_STYLE.get(status, "")
    flow = Text.assemble("flow ", (view.flow_id, "bold"))
    took = Text(f"after {(view.ended_at or view.updated_at) - view.created_at:.2f} s")
    if status == "delivered" and view.delivered_step is not None:
        channel = view.steps[view.delivered_step].channel
        outcome = Text(f"delivered by step {view.delivered_step} ({channel})", style)
        return Parts(("", flow), ("  ", outcome), (" ", took))
    if status in ("failed", "cancelled"):
        reason = Text(view.reason or "")
        return Parts(("", flow), ("  ", Text(status, style)), (" ", took), (": ", reason))
    if status == "verified":
        entered = Text("the code was entered")
        return Parts(("", flow), ("  ", Text("verified", style)), (": ", entered), (" ", took))
    if status == "in_progress" and view.current < len(view.steps):
        step = view.steps[view.current]
        doing = Text(f"step {step.index} {step.channel} {step.status}")
        return Parts(("", flow), ("  ", Text("in progress", style)), (": ", doing))
    if status == "queued":
        hint = Text()
        if now - view.created_at > NO_WORKER_HINT_SECONDS:
            hint = Text("(is `otpflow worker` running?)", "yellow")
        waiting = Text("waiting for a worker to take step 0")
        return Parts(("", flow), ("  ", Text("queued", style)), (": ", waiting), (" ", hint))
    return Parts(("", flow), ("  ", Text(status, style)))


WHO = ("#", "channel", "provider", "status", "report")
WHEN = ("#", "sent", "ended", "timeout", "reason")
COLUMNS = ("#", "channel", "provider", "status", "sent", "ended", "timeout", "report", "reason")
GAP = 2  # spaces between two columns
# one table only when its reason column gets at least this many columns (or all it needs)
REASON_MIN_WIDTH = 28


def _cells(step: StepView, start: float) -> dict[str, Text]:
    channel = step.channel + (f" ({step.message_type})" if step.message_type else "")
    return {
        "#": Text(str(step.index)),
        "channel": Text(channel),
        "provider": Text(step.provider or "-"),
        "status": Text(step.status, STEP_STYLE.get(step.status, "")),
        "sent": Text(relative(step.accepted_at, start)),
        "ended": Text(relative(step.ended_at, start)),
        "timeout": Text(f"{step.timeout}s"),
        "report": Text(step.dlr, report_tone(step.dlr)) if step.dlr else Text("-"),
        "reason": Text(step_reason(step)),
    }


class StepsTable:
    """The steps as a table that fits the width it is given: all columns in one table when the
    reason still gets room, else two tables (who and what, then when and why), each with the
    step's ``#``. Only the channel (its message type) and the reason wrap; a name too long for
    a very narrow terminal is cut with an ellipsis, never dropped."""

    def __init__(self, view: FlowView) -> None:
        self.rows = [_cells(step, view.created_at) for step in view.steps]

    def natural(self, column: str) -> int:
        return max([len(column), *(row[column].cell_len for row in self.rows)])

    def width_without_reason(self, columns: tuple[str, ...]) -> int:
        return sum(self.natural(c) for c in columns if c != "reason") + GAP * (len(columns) - 1)

    def table(self, columns: tuple[str, ...], width: int) -> Table:
        table = Table(
            box=box.SIMPLE_HEAD,
            header_style="bold",
            show_edge=False,
            pad_edge=False,
            collapse_padding=True,
        )
        for column in columns:
            if column == "reason":
                room = max(width - self.width_without_reason(columns), 8)
                table.add_column(column, max_width=room, overflow="fold")
            elif column == "channel":
                table.add_column(column, min_width=len(column), overflow="fold")
            elif column in ("provider", "report"):  # one word: cut with an ellipsis if need be
                table.add_column(column, overflow="ellipsis")
            else:  # "#", the status and the times: short, never wrapped nor dropped
                table.add_column(column, no_wrap=True, min_width=min(self.natural(column), 6))
        for row in self.rows:
            table.add_row(*(row[column] for column in columns))
        return table

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        width = options.max_width
        reason = min(self.natural("reason"), REASON_MIN_WIDTH)
        if self.width_without_reason(COLUMNS) + reason <= width:
            yield self.table(COLUMNS, width)
        else:
            yield self.table(WHO, width)
            yield Text()
            yield self.table(WHEN, width)

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        return Measurement(
            min(self.width_without_reason(WHEN) + 8, options.max_width), options.max_width
        )


def steps_table(view: FlowView) -> StepsTable:
    return StepsTable(view)


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
