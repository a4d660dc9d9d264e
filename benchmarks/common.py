"""What the benchmark scripts share: the flow they send, progress bars and the wait for flows
to end.

Progress goes to stderr and the results to stdout, so ``python benchmarks/flows.py > out.txt``
keeps only the numbers.
"""

from __future__ import annotations

import time
from typing import Any

import redis
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from otpflow.flow import keys
from otpflow.flow.states import TERMINAL_FLOW

ENDED = {status.value.encode() for status in TERMINAL_FLOW}

# progress and "starting ..." spinners: on stderr, away from the numbers on stdout
progress_console = Console(stderr=True)


def progress_bars() -> Progress:
    """Bars for a script's long phases: what, how far, how long so far, how long to go."""
    return Progress(
        TextColumn("{task.description:<12}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("left"),
        TimeRemainingColumn(),
        console=progress_console,
    )


def sms_then_whatsapp(to: str, sms_timeout: int, whatsapp_timeout: int) -> dict[str, Any]:
    """The flow every benchmark sends: an SMS, then a WhatsApp text as the fallback."""
    return {
        "messages": [
            {
                "channel": "sms",
                "timeout": sms_timeout,
                "messageType": "",
                "data": {
                    "recipient": to,
                    "message": "Your code is 4821",
                    "sender_id": "ACME",
                    "route": "otp",
                },
            },
            {
                "channel": "whatsapp",
                "timeout": whatsapp_timeout,
                "messageType": "custom",
                "data": {"recipient": to, "phone_id": "bench", "text": "Your code is 4821"},
            },
        ]
    }


def wait_ended(
    state: redis.Redis, flow_ids: list[str], timeout: float, progress: Progress
) -> dict[str, str]:
    """Flow id -> final status for every flow that ended before the deadline; polls all
    statuses in one Redis round trip per pass and shows a "flows ended" bar."""
    ended: dict[str, str] = {}
    deadline = time.monotonic() + timeout
    bar = progress.add_task("flows ended", total=len(flow_ids))
    while len(ended) < len(flow_ids) and time.monotonic() < deadline:
        pending = [flow_id for flow_id in flow_ids if flow_id not in ended]
        pipe = state.pipeline(transaction=False)
        for flow_id in pending:
            pipe.hget(keys.flow(flow_id), "status")
        for flow_id, status in zip(pending, pipe.execute(), strict=True):
            if status in ENDED:
                ended[flow_id] = status.decode()
        progress.update(bar, completed=len(ended))
        time.sleep(0.25)
    return ended
