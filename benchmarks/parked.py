"""Benchmark: timers at production scale. Many flows wait on long timeouts ("parked"), and new
flows must still go out at once; timeouts must fire on time.

One worker process (threads; --workers for more), the API, the simulator and Redis, all on
this machine. Phases:

1. idle probes: --probes flows whose SMS the simulator delivers at once, paced at 20/s;
2. park: --parked flows whose SMS is accepted and never reported (timeout 300 s, the most a
   step may wait), offered at --park-rate flows/s; waits until every parked SMS was sent
   (at 200/s, 50,000 flows take 250 s: all of them wait on their timeouts at once);
3. parked probes: the same probes again, with every parked flow still waiting;
4. switch lag: --switch-flows flows at --switch-rate flows/s whose SMS is never reported
   (timeout 2 s) and whose WhatsApp is delivered, with the parked flows still waiting.

Printed: parked SMS sent (and that none went twice), probe send latency p50/p99 idle and
parked (flow stored by the producer -> SMS request at the simulator) and their ratio, the
worker's RSS, Redis memory per parked flow (used_memory growth over the parked flows / their
count), how many waited when probed, and the switch lag p50/p99 (SMS accepted + timeout ->
WhatsApp request at the simulator) with its parts. Times come from one machine's clock (Redis
TIME and the simulator's time.time()).

    python benchmarks/parked.py                       # 50,000 parked flows (about 7 minutes)
    python benchmarks/parked.py --parked 5000 --park-rate 300   # a quick look
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from typing import Any

import httpx
import redis
from rich.console import Console
from rich.table import Table

from otpflow.cli.stack import Stack
from otpflow.flow import keys
from otpflow.producers import OtpflowClient

from common import (
    bench_stack,
    cpu_seconds,
    percentile,
    progress_bars,
    rss_bytes,
    sms_then_whatsapp,
    submit,
)

console = Console()  # the results, on stdout; progress goes to stderr
PARKED_TIMEOUT = 300
# sent: waiting on its timeout, or (parked first, when parking takes longer than the timeout)
# already timed out; not yet sent: queued or being sent
SENT = (b"sent", b"timeout")
UNSENT = (b"pending", b"sending")
SWITCH_TIMEOUT = 2
PROBE_RATE = 20.0


def number(index: int) -> str:
    return f"91{7_000_000_000 + index}"


def sms_only(to: str, timeout: int) -> dict[str, Any]:
    return {"messages": sms_then_whatsapp(to, timeout, 30)["messages"][:1]}


def requests_by_recipient(sim: httpx.Client, channel: str) -> dict[str, float]:
    """Recipient -> when the simulator received its first request on `channel`."""
    seen: dict[str, float] = {}
    for request in sim.get("/_sim/requests", params={"channel": channel}).json()["requests"]:
        seen.setdefault(request["recipient"], request["received_at"])
    return seen


def count_status(state: redis.Redis, flow_ids: list[str], *step_statuses: bytes) -> int:
    """How many of the flows have their first step in one of these statuses."""
    found = 0
    for start in range(0, len(flow_ids), 5000):
        pipe = state.pipeline(transaction=False)
        for flow_id in flow_ids[start : start + 5000]:
            pipe.hget(keys.flow(flow_id), "s0:status")
        found += sum(status in step_statuses for status in pipe.execute())
    return found


class Bench:
    def __init__(self, args: argparse.Namespace, stack: Stack) -> None:
        self.args = args
        self.stack = stack
        self.sim = httpx.Client(base_url=stack.sim_url, timeout=120)
        self.client = OtpflowClient(stack.settings())
        self.state = self.client.redis
        self.next_number = 0

    def numbers(self, count: int) -> list[str]:
        start, self.next_number = self.next_number, self.next_number + count
        return [number(index) for index in range(start, start + count)]

    def rules(self, *rules: dict[str, Any]) -> None:
        self.sim.post("/_sim/rules", json={"rules": list(rules)}).raise_for_status()

    def probe(self, name: str, delivering: list[str]) -> list[float]:
        """Send probe flows (their SMS delivered at once); return each one's send latency."""
        people = self.numbers(self.args.probes)
        delivering += people  # rules are replaced whole: keep every earlier probe's rule
        self.rules(*self.base_rules(delivering))
        with progress_bars() as progress:
            ids = submit(
                self.client,
                [sms_only(to, 30) for to in people],
                PROBE_RATE,
                4,
                progress,
                name,
            )
        deadline = time.monotonic() + 120
        while count_status(self.state, ids, b"delivered") < len(ids):
            if time.monotonic() > deadline:
                break
            time.sleep(0.2)
        sent_at = requests_by_recipient(self.sim, "sms")
        latencies = []
        for to, flow_id in zip(people, ids, strict=True):
            view = self.client.status(flow_id)
            if view is not None and to in sent_at:
                latencies.append(sent_at[to] - view.created_at)
        return latencies

    def base_rules(self, delivering: list[str]) -> list[dict[str, Any]]:
        return [
            {"channel": "sms", "action": "never"},
            {"channel": "whatsapp", "action": "deliver", "delay_ms": 100},
            *({"channel": "sms", "recipient": to, "action": "deliver"} for to in delivering),
        ]


def run(args: argparse.Namespace) -> int:
    with bench_stack(args.redis, args.workers, args.concurrency) as stack:
        bench = Bench(args, stack)
        worker_pids = [p.pid for name, p in stack.processes.items() if name.startswith("worker")]

        def workers_rss() -> int:
            return sum(rss_bytes(pid) for pid in worker_pids)

        delivering: list[str] = []

        bench.probe("warm-up", delivering)  # connections and caches: not measured
        idle = bench.probe("idle probes", delivering)
        rss_idle = workers_rss()
        memory_before = int(bench.state.info("memory")["used_memory"])

        parked_to = bench.numbers(args.parked)
        with progress_bars() as progress:
            parked = submit(
                bench.client,
                [sms_only(to, PARKED_TIMEOUT) for to in parked_to],
                args.park_rate,
                8,
                progress,
                "parking",
            )
            bar = progress.add_task("parked sent", total=len(parked))
            deadline = time.monotonic() + 600
            # until none is still to be sent (reading 50,000 statuses costs the load generator
            # a fair share of a core: look every 2 s)
            while unsent := count_status(bench.state, parked, *UNSENT):
                progress.update(bar, completed=len(parked) - unsent)
                if time.monotonic() > deadline:
                    break
                time.sleep(2)
            progress.update(bar, completed=len(parked) - unsent)
        parked_sent = count_status(bench.state, parked, *SENT)
        waiting = count_status(bench.state, parked, b"sent")
        memory_parked = int(bench.state.info("memory")["used_memory"])
        timers = int(bench.state.zcard(keys.timers()))

        busy = bench.probe("parked probes", delivering)
        rss_parked = workers_rss()

        switching_to = bench.numbers(args.switch_flows)
        with progress_bars() as progress:
            switching = submit(
                bench.client,
                [sms_then_whatsapp(to, SWITCH_TIMEOUT, 30) for to in switching_to],
                args.switch_rate,
                8,
                progress,
                "switching",
            )
        deadline = time.monotonic() + 120
        while count_status(bench.state, switching, b"timeout") < len(switching):
            if time.monotonic() > deadline:
                break
            time.sleep(0.5)
        time.sleep(1)  # the last WhatsApp requests
        whatsapp_at = requests_by_recipient(bench.sim, "whatsapp")
        # the lag, and its parts: timer fired (the switch), next send claimed, request made
        lags, fired, queued, sending = [], [], [], []
        for to, flow_id in zip(switching_to, switching, strict=True):
            view = bench.client.status(flow_id)
            if view is None or view.steps[0].accepted_at is None or to not in whatsapp_at:
                continue
            sms, whatsapp = view.steps
            due = sms.accepted_at + sms.timeout
            switch = next(e["ts"] for e in view.events if e["type"] == "channel_switch")
            lags.append(whatsapp_at[to] - due)
            fired.append(switch - due)
            if whatsapp.claimed_at is not None:
                queued.append(whatsapp.claimed_at - switch)
                sending.append(whatsapp_at[to] - whatsapp.claimed_at)
        rss_end = workers_rss()
        cpu = sum(cpu_seconds(pid) for pid in worker_pids)
        still_parked = count_status(bench.state, parked, b"sent")
        duplicates = sum(
            n > 1
            for n in Counter(
                r["recipient"]
                for r in bench.sim.get("/_sim/requests", params={"channel": "sms"}).json()[
                    "requests"
                ]
            ).values()
        )
        bench.client.close()

    def ms(values: list[float], p: float) -> str:
        return f"{percentile(values, p) * 1000:.1f}"

    table = Table(
        title=f"{args.parked} parked flows (SMS timeout {PARKED_TIMEOUT} s) offered at "
        f"{args.park_rate:g}/s; {args.workers} worker(s) x {args.concurrency} threads"
    )
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_row(
        "parked SMS sent", f"{parked_sent} of {len(parked)} (none twice: {duplicates == 0})"
    )
    table.add_row("parked flows waiting when probed", f"{waiting} (timers index: {timers})")
    table.add_row("parked flows still waiting at the end", f"{still_parked}")
    table.add_row("probe send p50 / p99, idle", f"{ms(idle, 50)} / {ms(idle, 99)} ms")
    table.add_row("probe send p50 / p99, parked", f"{ms(busy, 50)} / {ms(busy, 99)} ms")
    table.add_row("probes measured (idle, parked)", f"{len(idle)}, {len(busy)}")
    table.add_row("parked p99 / idle p99", f"{percentile(busy, 99) / percentile(idle, 99):.2f}")
    table.add_row(
        "worker RSS idle / parked / end",
        f"{rss_idle / 2**20:.0f} / {rss_parked / 2**20:.0f} / {rss_end / 2**20:.0f} MB",
    )
    table.add_row(
        "Redis memory per waiting flow",
        f"{(memory_parked - memory_before) / max(len(parked), 1):.0f} bytes",
    )
    table.add_row(
        f"switch lag p50 / p99 at {args.switch_rate:g} flows/s",
        f"{ms(lags, 50)} / {ms(lags, 99)} ms ({len(lags)} of {len(switching)} switched)",
    )
    for part, values in (
        ("  timer due -> switched", fired),
        ("  switched -> next send claimed", queued),
        ("  claimed -> provider request", sending),
    ):
        table.add_row(part, f"{ms(values, 50)} / {ms(values, 99)} ms")
    table.add_row("worker CPU seconds", f"{cpu:.1f}")
    console.print(table)
    ok = parked_sent == len(parked) and not duplicates and len(lags) == len(switching)
    return 0 if ok else 1


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--parked", type=int, default=50_000)
    parser.add_argument(
        "--park-rate",
        type=float,
        default=200.0,
        help="flows/s offered: above parked/300, so every parked flow waits at once",
    )
    parser.add_argument("--probes", type=int, default=200, help="probe flows per probe phase")
    parser.add_argument("--switch-flows", type=int, default=2000)
    parser.add_argument("--switch-rate", type=float, default=100.0, help="flows/s offered")
    parser.add_argument("--workers", type=int, default=1, help="worker processes")
    parser.add_argument("--concurrency", type=int, default=16, help="threads per worker")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379")
    return run(parser.parse_args())


if __name__ == "__main__":
    sys.exit(main())
