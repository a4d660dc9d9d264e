"""The steps table, the summary and the timeline at the widths people meet: 80 columns (what rich
falls back to when ``otpflow send`` or ``otpflow status`` is piped, and the demo in a default
terminal) and narrower. No column vanishes, no line is longer than the width, no number is cut in
two, and a pipe gets plain text."""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import redis
from rich.console import Console, Group

from otpflow.cli.timeline import (
    COLUMNS,
    describe,
    event_line,
    relative,
    render_flow,
    steps_table,
    summary,
)
from otpflow.flow.models import FlowRequest
from otpflow.flow.states import DlrStatus
from otpflow.flow.store import FlowStore
from otpflow.flow.views import FlowView

from fakes import FLOW_ID, T0, TEST_KEYRING, switched_flow
from fakes import step_view as step

LONG_REASON = (
    "zixflow answered HTTP 503 Service Unavailable: upstream carrier gateway timed out after "
    "30000 ms (retry later) [code=GW_TIMEOUT]"
)


def failed_flow() -> FlowView:
    """Three steps, all failed: a long provider error, a failed report, a timeout."""
    return FlowView(
        flow_id=FLOW_ID,
        workspace="demo",
        status="failed",
        current=2,
        created_at=T0,
        updated_at=T0 + 125.5,
        ended_at=T0 + 125.5,
        delivered_step=None,
        reason="every step failed: the last one timed out without a delivered report",
        steps=[
            step(
                0,
                "sms",
                "error",
                provider="zixflow",
                message_id="zx-8f3a2b1c4d5e6f7a8b9c0d1e2f3a4b5c",
                accepted_at=T0 + 0.41,
                ended_at=T0 + 1.92,
                reason=LONG_REASON,
            ),
            step(
                1,
                "whatsapp",
                "failed",
                message_type="template",
                provider="gateway",
                accepted_at=T0 + 2.0,
                ended_at=T0 + 32.25,
                dlr="undelivered",
            ),
            step(
                2,
                "email",
                "timeout",
                provider="messageflow",
                timeout=90,
                accepted_at=T0 + 32.3,
                ended_at=T0 + 125.5,
            ),
        ],
        events=[
            {"type": "flow_created", "steps": 3, "ts": T0},
            {
                "type": "attempt_failed",
                "step": 0,
                "channel": "sms",
                "provider": "zixflow",
                "attempt": 1,
                "reason": LONG_REASON,
                "ts": T0 + 0.3,
            },
            {
                "type": "send_error",
                "step": 0,
                "channel": "sms",
                "reason": LONG_REASON,
                "ts": T0 + 1.92,
            },
            {
                "type": "channel_switch",
                "step": 0,
                "channel": "sms",
                "to_channel": "whatsapp",
                "status": "error",
                "reason": "send_error",
                "ts": T0 + 1.95,
            },
            {
                "type": "dlr",
                "step": 1,
                "channel": "whatsapp",
                "status": "undelivered",
                "ts": T0 + 32.25,
            },
            {"type": "flow_failed", "reason": "every step failed", "ts": T0 + 125.5},
        ],
    )


def rendered(renderable: object, width: int) -> list[str]:
    """As a pipe gets it: not a terminal, so no colors."""
    out = io.StringIO()
    console = Console(width=width, file=out, force_terminal=False)
    console.print(renderable)
    text = out.getvalue()
    assert "\x1b" not in text  # plain output: no color codes, no cursor moves
    return text.splitlines()


def headers(lines: list[str]) -> list[str]:
    """The column headers of every table: the words of each line starting with ``#``."""
    return [word for line in lines if line.startswith("#") for word in line.split()]


NUMBER = re.compile(r"\d+(?:[.:-]\d+)*")


def numbers(lines: list[str]) -> set[str]:
    """Every number in the text; a number cut in two by a line break shows as two others."""
    return set(NUMBER.findall("\n".join(lines)))


def column(lines: list[str], name: str) -> str:
    """The text of a table column, read down from its header to the table's end."""
    start = next(i for i, line in enumerate(lines) if line.startswith("#") and name in line.split())
    at = lines[start].index(name)
    cells = []
    for line in lines[start + 2 :]:
        if not line.strip():
            break
        cells.append(line[at:].strip())
    return " ".join(" ".join(cells).split())


FLOWS = [pytest.param(failed_flow, id="failed"), pytest.param(switched_flow, id="delivered")]


@pytest.mark.parametrize("width", [80, 60])
@pytest.mark.parametrize("flow", FLOWS)
def test_a_narrow_terminal_or_a_pipe_keeps_every_column(
    flow: Callable[[], FlowView], width: int
) -> None:
    view = flow()
    lines = rendered(render_flow(view, now=T0 + 200), width)
    text = "\n".join(lines)
    assert set(headers(lines)) == set(COLUMNS)  # `#` and `reason` included
    assert max(len(line) for line in lines) <= width, text
    # every number (times, ids, codes, counts) whole, as a wide terminal shows it
    assert numbers(lines) == numbers(rendered(render_flow(view, now=T0 + 200), 1000)), text
    assert FLOW_ID in text
    # each step's row starts with its number, in every table
    for s in view.steps:
        assert sum(line.startswith(f"{s.index}  ") for line in lines) >= 1
    # the long reason wraps inside its column, whole
    for s in view.steps:
        if s.reason:
            assert s.reason in column(lines, "reason")


@pytest.mark.parametrize("width", [80, 60])
def test_the_demo_live_view_fits(width: int) -> None:
    """What ``otpflow demo`` redraws below the events: the summary and the steps table."""
    view = failed_flow()
    lines = rendered(Group(summary(view, now=T0 + 200), steps_table(view)), width)
    assert set(headers(lines)) == set(COLUMNS)
    assert max(len(line) for line in lines) <= width
    assert numbers(lines) == numbers(
        rendered(Group(summary(view, now=T0 + 200), steps_table(view)), 1000)
    )


def test_a_wide_terminal_gets_one_table() -> None:
    lines = rendered(render_flow(switched_flow()), 120)
    header = [line.split() for line in lines if line.startswith("#")]
    assert header == [list(COLUMNS)]
    assert lines[0] == f"flow {FLOW_ID}  delivered by step 1 (whatsapp) after 3.25 s"


def test_an_80_column_table_splits_and_keeps_the_step_numbers() -> None:
    lines = rendered(render_flow(failed_flow()), 80)
    header = [line.split() for line in lines if line.startswith("#")]
    assert header == [
        ["#", "channel", "provider", "status", "report"],
        ["#", "sent", "ended", "timeout", "reason"],
    ]
    row = next(line.split() for line in lines if line.startswith("1  ") and "+2.00s" in line)
    assert row[:4] == ["1", "+2.00s", "+32.2s", "30s"]


def test_the_summary_breaks_between_its_parts() -> None:
    view = failed_flow()
    for width in (80, 60):
        lines = rendered(summary(view), width)
        assert lines[0] == f"flow {FLOW_ID}" or lines[0].startswith(f"flow {FLOW_ID}  failed")
        assert any("after 125.50 s:" in line for line in lines)
        assert " ".join(lines).split() == summary(view).plain.split()  # nothing lost
    wide = rendered(summary(view), 200)
    assert wide == [
        f"flow {FLOW_ID}  failed after 125.50 s: every step failed: the last one timed out "
        "without a delivered report"
    ]


def test_a_wrapped_event_stays_indented_under_its_text() -> None:
    event = failed_flow().events[1]
    lines = rendered(event_line(event, T0), 60)
    assert len(lines) > 1
    assert lines[0].startswith("   +0.30s  step 0 sms: attempt 1 via zixflow failed")
    assert all(line.startswith(" " * 11) and line[11] != " " for line in lines[1:])
    assert max(len(line) for line in lines) <= 60


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [
        (0, "+0.00s"),
        (1.234, "+1.23s"),
        (9.999, "+10.0s"),
        (32.25, "+32.2s"),
        (125.5, "+126s"),
        (999.4, "+999s"),
        (1000, "+16m40s"),
        (7500, "+2h05m"),
    ],
)
def test_times_are_short(seconds: float, shown: str) -> None:
    assert relative(T0 + seconds, T0) == shown
    assert len(shown) <= 7
    assert relative(None, T0) == "-"


# -- the installed command, piped ----------------------------------------------------------------


def test_status_piped_is_plain_and_fits_80_columns(redis_client: redis.Redis) -> None:
    """``otpflow status ID | less``: rich falls back to 80 columns and no colors."""
    store = FlowStore(redis_client, TEST_KEYRING, ttl_seconds=600)
    to = "919876543210"
    sms = {"recipient": to, "message": "Your code is 4821", "sender_id": "ACME", "route": "otp"}
    whatsapp = {"recipient": to, "phone_id": "acme-phone", "template_name": "otp_code"}
    messages = [
        {"channel": "sms", "timeout": 30, "messageType": "", "data": sms},
        {"channel": "whatsapp", "timeout": 30, "messageType": "template", "data": whatsapp},
    ]
    flow_id = store.create("demo", FlowRequest.parse({"messages": messages}))
    store.mark_enqueued(flow_id)
    assert store.claim(flow_id, 0, 1, 30).kind == "claimed"
    store.attempt_failed(flow_id, 0, "zixflow", LONG_REASON, 1)
    store.send_error(flow_id, 0, "zixflow", LONG_REASON)
    assert store.claim(flow_id, 1, 1, 30).kind == "claimed"
    store.accepted(
        flow_id, 1, "zixflow", "wamid.HBgMOTE5ODc2NTQzMjEwFQIAERgSQUJDREVGMDEyMzQ1Njc4OQA=", 30
    )
    store.record_dlr(flow_id, 1, DlrStatus.DELIVERED, "zixflow")

    otpflow = shutil.which("otpflow", path=str(Path(sys.executable).parent))
    assert otpflow, "the otpflow console script is not installed (pip install -e .)"
    pool = redis_client.connection_pool.connection_kwargs
    url = f"redis://{pool['host']}:{pool['port']}/{pool['db']}"
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("OTPFLOW_") and k not in ("COLUMNS", "NO_COLOR", "FORCE_COLOR")
    }
    env |= {"OTPFLOW_REDIS_URL": url, "TERM": "xterm-256color"}
    result = subprocess.run(
        [otpflow, "status", flow_id], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "\x1b" not in result.stdout  # a pipe: plain text, though the terminal has colors
    assert max(len(line) for line in lines) <= 80, result.stdout
    assert set(headers(lines)) == set(COLUMNS)
    assert lines[0] == f"flow {flow_id}  delivered by step 1 (whatsapp)"
    assert re.fullmatch(r"after \d+\.\d\d s", lines[1])  # the summary breaks between its parts
    assert LONG_REASON in column(lines, "reason")


# -- the whole flow, as otpflow status shows it ---------------------------------------------


def rendered_wide(view: FlowView, now: float | None = None) -> list[str]:
    console = Console(width=120, no_color=True, record=True, file=io.StringIO())
    console.print(render_flow(view, now=now))
    return [line.rstrip() for line in console.export_text().splitlines()]


def cells(lines: list[str], first: str) -> list[str]:
    return next(line.split() for line in lines if line.split()[:1] == [first])


def test_the_timeline_shows_each_steps_outcome_and_the_events() -> None:
    lines = rendered_wide(switched_flow())
    assert lines[0] == f"flow {FLOW_ID}  delivered by step 1 (whatsapp) after 3.25 s"
    header = cells(lines, "#")
    assert header == [
        "#",
        "channel",
        "provider",
        "status",
        "sent",
        "ended",
        "timeout",
        "report",
        "reason",
    ]
    assert cells(lines, "0") == [
        "0",
        "sms",
        "zixflow",
        "failed",
        "+0.40s",
        "+1.90s",
        "10s",
        "undelivered",
        "reported",
        "undelivered",
    ]
    assert cells(lines, "1")[:8] == [
        "1",
        "whatsapp",
        "gateway",
        "delivered",
        "+2.00s",
        "+3.25s",
        "10s",
        "delivered",
    ]
    text = "\n".join(lines)
    for event in (
        "+0.00s  flow created with 2 steps",
        "+0.40s  step 0 sms: accepted by zixflow",
        "+1.90s  step 0 sms: delivery report undelivered",
        "+1.95s  switch sms -> whatsapp (step 0 failed: dlr_undelivered)",
        "+2.10s  switch webhook for step 0: delivered (HTTP 204)",
        "+3.25s  flow delivered by step 1",
    ):
        assert event in text, event
    # provider text is printed as it is, never read as markup
    assert "attempt 1 via zixflow failed ([Errno 111] [bold]refused[/bold])" in text


def test_colors_follow_the_outcome() -> None:
    console = Console(
        width=120,
        force_terminal=True,
        color_system="standard",
        record=True,
        file=io.StringIO(),
    )
    console.print(render_flow(switched_flow()))
    styled = console.export_text(styles=True)
    step_rows = [line for line in styled.splitlines() if line.startswith(("0 ", "1 "))]
    assert re.search(r"\x1b\[1;31mfailed *\x1b\[0m", step_rows[0])  # bold red
    assert re.search(r"\x1b\[31mundelivered\x1b\[0m", step_rows[0])
    assert re.search(r"\x1b\[1;32mdelivered *\x1b\[0m", step_rows[1])  # bold green
    assert "\x1b[1;32mdelivered by step 1 (whatsapp)\x1b[0m" in styled


def test_a_flow_no_worker_takes_says_so() -> None:
    queued = FlowView(
        flow_id="f",
        workspace="ws",
        status="queued",
        current=0,
        created_at=T0,
        updated_at=T0,
        ended_at=None,
        delivered_step=None,
        reason=None,
        steps=[step(0, "sms", "pending")],
    )
    assert "otpflow worker" not in summary(queued, now=T0 + 1).plain
    assert "is `otpflow worker` running?" in summary(queued, now=T0 + 60).plain


def test_a_send_says_why_its_provider_was_chosen() -> None:
    base = {"type": "sent", "step": 0, "channel": "sms", "provider": "messageflow"}
    adaptive = {"mode": "adaptive", "country": "IN", "rank": 1, "score": 0.91, "explored": False}
    assert describe({**base, "route": adaptive}).plain == (
        "step 0 sms: accepted by messageflow (adaptive for IN: rank 1, score 0.91)"
    )
    explored = {**adaptive, "rank": 2, "score": 0.31, "explored": True}
    assert describe({**base, "route": explored}).plain.endswith("rank 2, score 0.31, exploring)")
    static = {"mode": "static", "rank": 2}
    assert describe({**base, "route": static}).plain.endswith("(static order: 2)")
    only = {"mode": "adaptive", "rank": 1, "only": True}
    assert describe({**base, "route": only}).plain.endswith("(the channel's only provider)")
    assert describe(base).plain == "step 0 sms: accepted by messageflow"  # before routing
