"""Benchmark: N SMS -> WhatsApp flows through real Redis, real worker processes and the
simulator over loopback.

Every flow's SMS is accepted but never delivered (timeout --timeout seconds), so every flow
switches to WhatsApp, which the simulator delivers after 100 ms; with --sms delivered, every
SMS is delivered 50 ms after it is sent instead. Printed:

- completed flows/s: flows / (first submit -> last flow delivered);
- send latency p50/p99: flow accepted (stored by the producer) -> SMS request at the simulator;
- switch lag p50/p99: SMS timeout expiry (provider acceptance + timeout) -> WhatsApp request at
  the simulator.

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
from rich.console import Console
from rich.table import Table

from otpflow.config.celery import make_celery
from otpflow.config.settings import Settings
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
    if args.broker.startswith("amqp"):
        clean_rabbitmq(args.broker)
    with bench_stack(args.redis, args.workers, args.concurrency, args.pool, args.broker) as stack:
        sim = httpx.Client(base_url=stack.sim_url, timeout=30)
        sim.post(
            "/_sim/rules",
            json={
                "rules": [
                    # --sms delivered: the peak of flows that end at their first step
                    {"channel": "sms", "accept_delay_ms": args.provider_ms}
                    | (
                        {"action": "deliver", "delay_ms": 50}
                        if args.sms == "delivered"
                        else {"action": "never"}
                    ),
                    {
                        "channel": "whatsapp",
                        "action": "deliver",
                        "delay_ms": 100,
                        "accept_delay_ms": args.provider_ms,
                    },
                ]
            },
        ).raise_for_status()
        client = OtpflowClient(
            Settings(redis_url=stack.redis_url, broker_url=stack.broker_url, secret=stack.secret)
        )
        bodies = [flow_body(i, args.timeout) for i in range(args.flows)]

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
        cpu = {name: cpu_seconds(process.pid) for name, process in stack.processes.items()}
        cpu["redis"] = redis_cpu(client.redis) - redis_cpu_before
        cpu["producer (this script)"] = own_cpu() - own_cpu_before

    by_recipient: dict[tuple[str, str], float] = {
        (r["recipient"], r["channel"]): r["received_at"] for r in requests
    }
    send_latency, switch_lag, ends = [], [], []
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
        if sms_at is not None:
            send_latency.append(sms_at - view.created_at)
        sms = view.steps[0]
        if whatsapp_at is not None and sms.accepted_at is not None:
            switch_lag.append(whatsapp_at - (sms.accepted_at + sms.timeout))

    duration = (max(ends) - started) if ends else float("nan")
    table = Table(
        title=f"{args.flows} flows, {args.workers} worker process(es) x "
        f"{args.concurrency} {args.pool}, SMS {args.sms} (timeout {args.timeout} s), "
        f"provider answers in {args.provider_ms} ms"
    )
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_row("submitted in", f"{submitted - started:.2f} s")
    table.add_row("ended / delivered", f"{len(views)} / {delivered}")
    if why_not:
        table.add_row("not delivered", ", ".join(f"{n} {why}" for why, n in why_not.items()))
    table.add_row("completed flows/s", f"{len(views) / duration:.1f}")
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
    parser.add_argument("--timeout", type=int, default=2, help="SMS step timeout (s)")
    parser.add_argument(
        "--sms",
        choices=["never", "delivered"],
        default="never",
        help="never: every SMS times out and WhatsApp delivers (the switch lag); delivered: "
        "the SMS is delivered 50 ms after it is sent (one send per flow: the peak)",
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
    parser.add_argument("--redis", default="redis://127.0.0.1:6379")
    parser.add_argument(
        "--broker", default="", help="broker URL (default: Redis db 10; amqp://... for RabbitMQ)"
    )
    return run(parser.parse_args())


if __name__ == "__main__":
    sys.exit(main())
