"""Benchmark: adaptive routing against static routing when one SMS provider degrades in one
country, the same traffic back to back, through the real API client, workers and simulator.

Each flow is an SMS (two providers, zixflow then messageflow, --sms-timeout s) then a WhatsApp
text. People are in IN (--india-share of the traffic), GB, DE and BR. Both SMS providers
deliver 97 % after 1-3 s (the rest are lost without a report); WhatsApp 99 % after 0.5-1.5 s.
After --steady flows, zixflow delivers only 30 % of +91 (the rest lost) for --degraded flows.

Printed, for each mode, over the IN flows of the degradation: mean and p50/p99 time to
deliver (flow created -> delivered, Redis time); first-step delivery in all of them and after
the first --recovery of them; how many IN flows went by before the preferred provider changed;
and the times the preferred provider changed in the steady phase (per country). Targets (issue
16): adaptive mean time to deliver <= 0.5 x static during the degradation; first-step delivery
back above 90 % within 200 flows of its start; at most 2 changes of the preferred provider in
a steady state.

    python benchmarks/routing.py                      # about 8 minutes on 2 cores
    python benchmarks/routing.py --steady 200 --degraded 500 --rate 8
"""

from __future__ import annotations

import argparse
import itertools
import random
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import redis
from rich.console import Console
from rich.table import Table

from otpflow.flow.keyring import Keyring
from otpflow.flow.store import FlowStore
from otpflow.producers import OtpflowClient

from common import bench_stack, percentile, progress_bars, sms_then_whatsapp, submit, wait_ended

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from harness import random_mobile

COUNTRIES = ("IN", "GB", "DE", "BR")
HEALTHY = [
    {"channel": "sms", "action": "deliver", "deliver_share": 0.97, "lost": True,
     "delay_ms": 1000, "delay_ms_max": 3000},
    {"channel": "whatsapp", "action": "deliver", "deliver_share": 0.99, "lost": True,
     "delay_ms": 500, "delay_ms_max": 1500},
]  # fmt: skip
DEGRADED = [
    {"provider": "zixflow", "channel": "sms", "prefix": "91", "action": "deliver",
     "deliver_share": 0.3, "lost": True, "delay_ms": 1000, "delay_ms_max": 3000},
    *HEALTHY,
]  # fmt: skip


@dataclass
class Flow:
    country: str
    phase: str  # "steady" or "degraded"
    flow_id: str = ""
    delivered_in: float | None = None  # seconds, created -> delivered
    first_step: bool = False  # delivered by its SMS
    first_provider: str = ""  # the SMS provider tried first
    explored: bool = False  # put first to explore or to probe


def plan(args: argparse.Namespace) -> list[Flow]:
    rng = random.Random(args.seed)
    others = [c for c in COUNTRIES if c != "IN"]
    flows = []
    for phase, count in (("steady", args.steady), ("degraded", args.degraded)):
        for _ in range(count):
            country = "IN" if rng.random() < args.india_share else rng.choice(others)
            flows.append(Flow(country, phase))
    return flows


def run_mode(args: argparse.Namespace, mode: str, flows: list[Flow]) -> None:
    env = {
        "OTPFLOW_ROUTES__SMS": "zixflow,messageflow",
        "OTPFLOW_ROUTES__WHATSAPP": "zixflow",
        "OTPFLOW_ROUTING__MODE": mode,
        "OTPFLOW_ROUTING__WINDOW_SECONDS": str(args.window),
        "OTPFLOW_LIMITS__WORKSPACE_RPS": "1000",
    }
    rng = random.Random(args.seed + 1)
    numbers = [random_mobile(flow.country, rng) for flow in flows]
    bodies = [sms_then_whatsapp(to, args.sms_timeout, 30) for to in numbers]
    with bench_stack(args.redis, args.workers, args.concurrency, extra_env=env) as stack:
        settings = stack.settings()
        client = OtpflowClient(settings)
        sim = httpx.Client(base_url=stack.sim_url, timeout=30)
        sim.post("/_sim/rules", json={"rules": HEALTHY}).raise_for_status()
        steady = sum(1 for flow in flows if flow.phase == "steady")
        with progress_bars() as progress:
            ids = submit(client, bodies[:steady], args.rate, 8, progress, f"{mode} steady")
            sim.post("/_sim/rules", json={"rules": DEGRADED}).raise_for_status()
            ids += submit(client, bodies[steady:], args.rate, 8, progress, f"{mode} degraded")
            state = redis.Redis.from_url(stack.redis_url)
            wait_ended(state, ids, args.sms_timeout + 60, progress)
        store = FlowStore(state, Keyring.from_secret(stack.secret), ttl_seconds=3600)
        for flow, flow_id in zip(flows, ids, strict=True):
            flow.flow_id = flow_id
            read(store, flow)
        client.close()
        sim.close()


def read(store: FlowStore, flow: Flow) -> None:
    view = store.get(flow.flow_id)
    if view is None:
        return
    events = view.events
    created = next(e["ts"] for e in events if e["type"] == "flow_created")
    delivered = [e["ts"] for e in events if e["type"] == "flow_delivered"]
    if delivered:
        flow.delivered_in = delivered[0] - created
        flow.first_step = view.delivered_step == 0
    first_send = next((e for e in events if e.get("step") == 0 and "route" in e), None)
    if first_send is not None:
        flow.first_provider = first_send["provider"]
        route = first_send["route"]
        flow.explored = bool(route.get("explored") or route.get("probe"))


@dataclass
class Result:
    mean: float
    p50: float
    p99: float
    first_step_all: float
    first_step_after: float
    flows_to_switch: int | None
    steady_changes: dict[str, int]
    undelivered: int
    explored: float


def summarise(args: argparse.Namespace, flows: list[Flow]) -> Result:
    india = [f for f in flows if f.phase == "degraded" and f.country == "IN"]
    times = [f.delivered_in for f in india if f.delivered_in is not None]
    after = india[args.recovery :]
    switched = next(
        (n for n, f in enumerate(india) if not f.explored and f.first_provider == "messageflow"),
        None,
    )
    changes = {}
    for country in COUNTRIES:
        preferred = [
            f.first_provider
            for f in flows
            if f.phase == "steady" and f.country == country and not f.explored
        ]
        changes[country] = sum(1 for a, b in itertools.pairwise(preferred) if a != b)
    return Result(
        mean=statistics.fmean(times),
        p50=percentile(times, 50),
        p99=percentile(times, 99),
        first_step_all=sum(f.first_step for f in india) / len(india),
        first_step_after=sum(f.first_step for f in after) / max(1, len(after)),
        flows_to_switch=switched,
        steady_changes=changes,
        undelivered=sum(1 for f in india if f.delivered_in is None),
        explored=sum(f.explored for f in india) / len(india),
    )


def cells(r: Result) -> list[str]:
    return [
        f"{r.mean:.2f} s",
        f"{r.p50:.2f} s",
        f"{r.p99:.2f} s",
        f"{r.first_step_all:.1%}",
        f"{r.first_step_after:.1%}",
        "never" if r.flows_to_switch is None else str(r.flows_to_switch),
        ", ".join(f"{country} {n}" for country, n in r.steady_changes.items()),
        str(r.undelivered),
        f"{r.explored:.1%}",
    ]


def report(args: argparse.Namespace, results: dict[str, Result], flows: int) -> int:
    static, adaptive = results["static"], results["adaptive"]
    ratio = adaptive.mean / static.mean
    table = Table(
        title=f"Routing under a degradation: {flows} flows per mode, IN flows of the degradation"
    )
    table.add_column("metric")
    for mode in results:
        table.add_column(mode, justify="right")
    labels = [
        "time to deliver, mean",
        "time to deliver, p50",
        "time to deliver, p99",
        "first-step delivery, all",
        f"first-step delivery, after the first {args.recovery}",
        "IN flows before zixflow lost its place",
        "preferred changes, steady (per country)",
        "IN flows not delivered",
        "IN flows sent first to explore or probe",
    ]
    columns = [cells(result) for result in results.values()]
    for index, label in enumerate(labels):
        table.add_row(label, *(column[index] for column in columns))
    console = Console()
    console.print(table)
    steady_worst = max(adaptive.steady_changes.values())
    checks = [
        (f"adaptive / static mean time to deliver = {ratio:.2f} (target <= 0.5)", ratio <= 0.5),
        (
            f"first-step delivery after {args.recovery} IN flows = "
            f"{adaptive.first_step_after:.1%} (target > 90 %)",
            adaptive.first_step_after > 0.9,
        ),
        (
            f"preferred provider changes in the steady phase, worst country = {steady_worst} "
            "(target <= 2)",
            steady_worst <= 2,
        ),
    ]
    for text, ok in checks:
        console.print(("met: " if ok else "MISSED: ") + text)
    return 0 if all(ok for _, ok in checks) else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steady", type=int, default=500, help="flows before the degradation")
    parser.add_argument("--degraded", type=int, default=1000, help="flows during it")
    parser.add_argument("--rate", type=float, default=8.0, help="flows per second")
    parser.add_argument("--india-share", type=float, default=0.4)
    parser.add_argument("--sms-timeout", type=int, default=10, help="the SMS step's timeout")
    parser.add_argument("--window", type=int, default=60, help="OTPFLOW_ROUTING__WINDOW_SECONDS")
    parser.add_argument("--recovery", type=int, default=200, help="IN flows allowed to recover")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--seed", type=int, default=16)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379")
    args = parser.parse_args()
    results = {}
    total = args.steady + args.degraded
    for mode in ("static", "adaptive"):
        flows = plan(args)
        started = time.monotonic()
        run_mode(args, mode, flows)
        print(f"{mode}: ran in {time.monotonic() - started:.0f} s", file=sys.stderr)
        results[mode] = summarise(args, flows)
    return report(args, results, total)


if __name__ == "__main__":
    sys.exit(main())
