"""What the benchmark scripts share: the flow they send, progress bars and the wait for flows
to end.

Progress goes to stderr and the results to stdout, so ``python benchmarks/flows.py > out.txt``
keeps only the numbers.
"""

from __future__ import annotations

import contextlib
import os
import resource
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
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

from otpflow.cli.stack import Stack
from otpflow.flow import keys
from otpflow.flow.states import TERMINAL_FLOW
from otpflow.producers import OtpflowClient

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


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def submit(
    client: OtpflowClient,
    bodies: list[dict[str, Any]],
    rate: float,
    producers: int,
    progress: Progress,
    label: str = "submitting",
) -> list[str]:
    """Send every flow: as fast as `producers` threads can, or paced at `rate` flows/s."""
    bar = progress.add_task(label, total=len(bodies))

    def send(body: dict[str, Any]) -> str:
        flow_id = client.send(body, workspace="bench")
        progress.advance(bar)  # thread safe
        return flow_id

    with ThreadPoolExecutor(producers) as pool:
        if rate <= 0:
            return list(pool.map(send, bodies))
        # paced by the clock, sent by the pool: a slow send does not slow the offered rate
        futures = []
        start = time.monotonic()
        for index, body in enumerate(bodies):
            pause = start + index / rate - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            futures.append(pool.submit(send, body))
        return [future.result() for future in futures]


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and its live descendants (a prefork pool's
    children), plus its reaped children (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = sum(int(value) for value in fields[11:15])
    for child in _children(pid):
        # a child that exited meanwhile is counted in its parent's reaped children
        with contextlib.suppress(OSError):
            ticks += round(cpu_seconds(child) * os.sysconf("SC_CLK_TCK"))
    return ticks / os.sysconf("SC_CLK_TCK")


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(child) for child in (task / "children").read_text().split()]
        except OSError:
            continue
    return found


def rss_bytes(pid: int) -> int:
    """Resident memory of a process and its live descendants (Linux /proc)."""
    total = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            total += int(line.split()[1]) * 1024
    for child in _children(pid):
        with contextlib.suppress(OSError):
            total += rss_bytes(child)
    return total


def own_cpu() -> float:
    """User + system CPU seconds of this process (the load generator)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def redis_cpu(client: redis.Redis) -> float:
    """User + system CPU seconds the Redis server has used (INFO cpu)."""
    info = client.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


@contextmanager
def bench_stack(
    server: str,
    workers: int,
    concurrency: int,
    pool: str = "threads",
    broker_url: str = "",
    api_processes: int = 1,
    extra_env: dict[str, str] | None = None,
) -> Iterator[Stack]:
    """The simulator, the API (`api_processes` processes) and `workers` worker processes on
    fresh benchmark databases (state in db 11, the broker in db 10 unless `broker_url` names
    another), stopped after. The fraud guard is off unless `extra_env` turns it on: the
    throughput benchmarks send to numbers in a row, which it would rightly block."""
    state_url = f"{server}/11"
    for url in (state_url, f"{server}/10"):
        client = redis.Redis.from_url(url)
        client.flushdb()
        client.close()
    stack = Stack(
        redis_url=state_url,
        broker_url=broker_url or f"{server}/10",
        api_keys="bench:bench-key",
        extra_env={"OTPFLOW_FRAUD__MODE": "off", **(extra_env or {})},
    )
    with stack:
        with progress_console.status(
            f"starting {workers} worker process(es), the simulator and the API"
        ):
            for index in range(workers):
                stack.start_worker(f"worker{index + 1}", concurrency, pool)
            stack.start_simulator()
            stack.start_api(api_processes)
            stack.wait_ready()
        yield stack
