"""Benchmark: N SMS -> WhatsApp flows through real Redis, real worker processes and the
simulator over loopback.

What the SMS does, --sms:

- never (default): accepted but never delivered, so every flow times out after --timeout
  seconds and switches to WhatsApp, which the simulator delivers after 100 ms;
- failed: a "failed" delivery report 50 ms after the send, so every flow switches at once;
- delivered: delivered 50 ms after the send; every flow ends at its first step (the peak).

Printed:

- completed flows/s: flows / (first submit -> last flow delivered);
- send latency p50/p99: flow accepted (stored by the producer) -> SMS request at the simulator;
- switch lag p50/p99: what made the flow switch -> WhatsApp request at the simulator. That
  is the SMS timeout's expiry (provider acceptance + timeout) for --sms never, and the moment
  the simulator posted the failed report for --sms failed (so the API's intake is inside it);
- CPU per flow of every process;
- Celery's own no-op ceiling (benchmarks/ceiling.py, --ceiling tasks), measured first in the
  same run, and completed flows/s as a ratio to it divided by the tasks a flow needs.

Times come from one machine's clock (the store's Redis TIME and the simulator's time.time()).

    python benchmarks/flows.py --flows 1000 --workers 2
    python benchmarks/flows.py --flows 400 --workers 2 --pool prefork --concurrency 4 \
        --provider-ms 300    # a slow provider: where the pool choice shows
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections import Counter
from typing import Any

import httpx
from ceiling import measure as measure_ceiling
from rich.console import Console
from rich.table import Table

from otpflow.config.process import freeze_heap
from otpflow.config.settings import Settings
from otpflow.flow.contract import make_celery
from otpflow.producers import OtpflowClient

from common import (
    bench_stack,
    cpu_seconds,
    own_cpu,
    percentile,
    progress_bars,
    redis_cpu,
    sms_then_whatsapp,
    submit,
    wait_ended,
)

console = Console()  # the results, on stdout; progress goes to stderr


SMS_RULES: dict[str, dict[str, Any]] = {
    "never": {"action": "never"},
    "failed": {"action": "fail", "delay_ms": 50},
    "delivered": {"action": "deliver", "delay_ms": 50},
}


def flow_body(index: int, timeout: int) -> tuple[str, dict[str, Any]]:
    to = f"91{7_000_000_000 + index}"
    return to, sms_then_whatsapp(to, timeout, 30)


def clean_rabbitmq(broker_url: str) -> None:
    """Start from empty queues on RabbitMQ."""
    app = make_celery(Settings(broker_url=broker_url))
    with app.connection_for_write() as connection:
        for queue in app.amqp.queues.values():
            queue.bind(connection.default_channel).declare()
            queue.bind(connection.default_channel).purge()
    app.close()


def run(args: argparse.Namespace) -> int:
    # Celery's own ceiling first, on the same machine in the same run (Redis broker)
    ceiling = (
        measure_ceiling(args.redis, args.ceiling, args.workers, args.concurrency, args.producers)
        if args.ceiling
        else None
    )
    if args.broker.startswith("amqp"):
        clean_rabbitmq(args.broker)
    with bench_stack(
        args.redis, args.workers, args.concurrency, args.pool, args.broker, args.api_processes
    ) as stack:
        sim = httpx.Client(base_url=stack.sim_url, timeout=30)
        sim.post(
            "/_sim/rules",
            json={
                "rules": [
                    # --sms delivered: the peak of flows that end at their first step
                    {"channel": "sms", "accept_delay_ms": args.provider_ms} | SMS_RULES[args.sms],
                    {
                        "channel": "whatsapp",
                        "action": "deliver",
                        "delay_ms": 100,
                        "accept_delay_ms": args.provider_ms,
                    },
                ]
            },
        ).raise_for_status()
        client = OtpflowClient(stack.settings())
        bodies = [flow_body(i, args.timeout) for i in range(args.flows)]
        # the load generator's own full collections (50 ms) would land inside send latencies
        freeze_heap()

        with progress_bars() as progress:
            started = time.time()
            redis_cpu_before, own_cpu_before = redis_cpu(client.redis), own_cpu()
            flow_ids = submit(
                client, [body for _, body in bodies], args.rate, args.producers, progress
            )
            submitted = time.time()
            ended = wait_ended(
                client.redis, flow_ids, args.timeout + 60 + args.flows / 20, progress
            )
        views = {flow_id: view for flow_id in ended if (view := client.status(flow_id))}
        requests = sim.get("/_sim/requests").json()["requests"]
        postbacks = sim.get("/_sim/postbacks").json()["postbacks"]
        cpu = {name: cpu_seconds(process.pid) for name, process in stack.processes.items()}
        cpu["redis"] = redis_cpu(client.redis) - redis_cpu_before
        cpu["producer (this script)"] = own_cpu() - own_cpu_before

    by_recipient: dict[tuple[str, str], float] = {
        (r["recipient"], r["channel"]): r["received_at"] for r in requests
    }
    # when the simulator first posted each SMS's report, by recipient
    reported = {p["request_id"]: p["sent_at"] for p in reversed(postbacks)}
    sms_reported: dict[str, float] = {
        r["recipient"]: reported[r["request_id"]]
        for r in requests
        if r["channel"] == "sms" and r["request_id"] in reported
    }
    send_latency, switch_lag, ends = [], [], []
    # where the two latencies go, segment by segment (see part())
    parts: dict[str, list[float]] = {}

    def part(name: str, start: float | None, end: float | None) -> None:
        if start is not None and end is not None:
            parts.setdefault(name, []).append(end - start)

    delivered = 0
    why_not: Counter[str] = Counter()
    for (to, _), flow_id in zip(bodies, flow_ids, strict=True):
        view = views.get(flow_id)
        if view is None:
            continue
        delivered += view.status == "delivered"
        if view.status != "delivered":
            last = view.steps[-1]
            why_not[f"{view.status}: {last.channel} {last.status} {last.reason or ''}"] += 1
        ends.append(view.ended_at or view.updated_at)
        sms_at = by_recipient.get((to, "sms"))
        whatsapp_at = by_recipient.get((to, "whatsapp"))
        sms = view.steps[0]
        if sms_at is not None:
            send_latency.append(sms_at - view.created_at)
            part("send: accepted -> claimed by a worker", view.created_at, sms.claimed_at)
            part("send: claimed -> at the provider", sms.claimed_at, sms_at)
        if whatsapp_at is None:
            continue
        whatsapp = view.steps[1]
        if args.sms == "failed" and to in sms_reported:
            switch_lag.append(whatsapp_at - sms_reported[to])
            part("switch: report posted -> recorded", sms_reported[to], sms.ended_at)
        elif args.sms == "never" and sms.accepted_at is not None:
            switch_lag.append(whatsapp_at - (sms.accepted_at + sms.timeout))
            part("switch: timeout due -> recorded", sms.accepted_at + sms.timeout, sms.ended_at)
        part("switch: recorded -> next claimed", sms.ended_at, whatsapp.claimed_at)
        part("switch: next claimed -> at the provider", whatsapp.claimed_at, whatsapp_at)

    duration = (max(ends) - started) if ends else float("nan")
    table = Table(
        title=f"{args.flows} flows, {args.workers} worker process(es) x "
        f"{args.concurrency} {args.pool}, {args.api_processes} API process(es), "
        f"SMS {args.sms} (timeout {args.timeout} s), "
        f"provider answers in {args.provider_ms} ms"
    )
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_row("submitted in", f"{submitted - started:.2f} s")
    table.add_row("ended / delivered", f"{len(views)} / {delivered}")
    if why_not:
        table.add_row("not delivered", ", ".join(f"{n} {why}" for why, n in why_not.items()))
    completed = len(views) / duration
    table.add_row("completed flows/s", f"{completed:.1f}")
    if ceiling is not None:
        # the Celery tasks a flow needs: one send per step it reaches
        tasks_per_flow = 1 if args.sms == "delivered" else 2
        table.add_row(
            "Celery ceiling, same run",
            f"{ceiling.consumed_per_second:.0f} no-op tasks/s "
            f"({ceiling.worker_cpu_ms:.2f} ms worker CPU each)",
        )
        table.add_row(
            f"ratio to ceiling / {tasks_per_flow} task(s) per flow",
            f"{completed / (ceiling.consumed_per_second / tasks_per_flow):.2f}",
        )
    table.add_row(
        "send latency p50 / p99",
        f"{percentile(send_latency, 50) * 1000:.0f} / {percentile(send_latency, 99) * 1000:.0f} ms",
    )
    table.add_row(
        "switch lag p50 / p99",
        f"{percentile(switch_lag, 50) * 1000:.0f} / {percentile(switch_lag, 99) * 1000:.0f} ms",
    )
    table.add_row(
        "switch lag mean", f"{statistics.fmean(switch_lag) * 1000:.0f} ms" if switch_lag else "-"
    )
    for name, values in parts.items():
        table.add_row(
            f"  {name} p50 / p99",
            f"{percentile(values, 50) * 1000:.1f} / {percentile(values, 99) * 1000:.1f} ms",
        )
    table.add_row("CPU seconds", ", ".join(f"{name} {sec:.1f}" for name, sec in cpu.items()))
    per_flow = {name: sec / args.flows * 1000 for name, sec in cpu.items()}
    table.add_row(
        "CPU ms per flow",
        ", ".join(f"{name} {ms:.1f}" for name, ms in per_flow.items())
        + f"; all {sum(per_flow.values()):.1f}",
    )
    console.print(table)
    client.close()
    return 0 if len(views) == args.flows == delivered else 1


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--flows", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=2, help="worker processes")
    parser.add_argument("--concurrency", type=int, default=16, help="threads per worker")
    parser.add_argument("--pool", default="threads", choices=["threads", "prefork", "solo"])
    parser.add_argument("--api-processes", type=int, default=1, help="otpflow api --processes")
    parser.add_argument("--timeout", type=int, default=2, help="SMS step timeout (s)")
    parser.add_argument(
        "--sms",
        choices=list(SMS_RULES),
        default="never",
        help="never: every SMS times out and WhatsApp delivers (timeout -> next channel); "
        "failed: a failed report 50 ms after the send (failed report -> next channel); "
        "delivered: the SMS is delivered 50 ms after it is sent (one send per flow: the peak)",
    )
    parser.add_argument(
        "--provider-ms",
        type=int,
        default=0,
        help="how long the provider takes to answer each send (I/O-bound sends)",
    )
    parser.add_argument("--producers", type=int, default=8, help="threads submitting flows")
    parser.add_argument(
        "--rate",
        type=float,
        default=0,
        help="flows per second to submit at (0: as fast as possible)",
    )
    parser.add_argument(
        "--ceiling",
        type=int,
        default=20_000,
        help="no-op tasks for Celery's ceiling, measured first in the same run (0: skip)",
    )
    parser.add_argument("--redis", default="redis://127.0.0.1:6379")
    parser.add_argument(
        "--broker", default="", help="broker URL (default: Redis db 10; amqp://... for RabbitMQ)"
    )
    return run(parser.parse_args())


if __name__ == "__main__":
    sys.exit(main())
