"""Benchmark: Celery's own ceiling on this machine, with OTPflow's Celery settings.

This script publishes --tasks tasks that do nothing but count themselves, as fast as
--producers threads can; then worker processes (threads pool, as OTPflow's) consume the full
queue. Printed: publishes/s and the publisher's CPU per task; tasks/s consumed from the first
task done to the last, with the CPU per task of the workers and of Redis; and what that ceiling
allows for flows that cost --tasks-per-flow tasks. OTPflow's completed flows/s
(benchmarks/flows.py) divided by that says how close it gets to Celery's own cost per task.

    python benchmarks/ceiling.py --tasks 20000 --workers 2 --concurrency 4
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import redis
from rich.console import Console
from rich.table import Table

from common import cpu_seconds, own_cpu, progress_console, redis_cpu

HERE = Path(__file__).resolve().parent
console = Console()


@dataclass(frozen=True)
class Ceiling:
    """What Celery alone does on this machine: publishes/s and consumed tasks/s, and the CPU
    milliseconds each costs."""

    tasks: int
    published_per_second: float
    publisher_cpu_ms: float
    consumed_per_second: float
    worker_cpu_ms: float
    redis_cpu_ms: float


def measure(server: str, tasks: int, workers: int, concurrency: int, producers: int) -> Ceiling:
    """Publish `tasks` no-op tasks from `producers` threads, then let `workers` processes of
    `concurrency` threads consume the full queue (broker in db 10, counter in db 11)."""
    broker_url, counter_url = f"{server}/10", f"{server}/11"
    for url in (broker_url, counter_url):
        redis.Redis.from_url(url).flushdb()
    env = os.environ | {"CEILING_BROKER_URL": broker_url, "CEILING_COUNTER_URL": counter_url}
    os.environ.update(env)
    from noop_app import COUNTER, app, counter  # after the URLs are set

    def publish(index: int) -> None:
        app.send_task("ceiling.noop", args=[index], queue="otpflow.send")

    # publish first, then consume: each side's ceiling on its own, neither waiting on the other
    state = redis.Redis.from_url(counter_url)
    own_before = own_cpu()
    started = time.monotonic()
    with ThreadPoolExecutor(producers) as pool:
        list(pool.map(publish, range(tasks)))
    published = time.monotonic()
    publisher_cpu = own_cpu() - own_before
    processes = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "noop_app",
                "worker",
                "--pool",
                "threads",
                "--concurrency",
                str(concurrency),
                "--queues",
                "otpflow.send",
                "--hostname",
                f"ceiling{index}-{os.getpid()}@%h",
                "--loglevel",
                "WARNING",
            ],
            cwd=HERE,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for index in range(workers)
    ]
    try:
        with progress_console.status("Celery ceiling: waiting for the workers to consume"):
            while int(counter.get(COUNTER) or 0) < 1:
                time.sleep(0.005)
        # from the first task done: the workers' start-up is not Celery's cost per task
        first, first_count = time.monotonic(), int(counter.get(COUNTER) or 0)
        redis_before = redis_cpu(state)
        workers_before = sum(cpu_seconds(process.pid) for process in processes)
        with progress_console.status("Celery ceiling: waiting for the tasks to run"):
            while int(counter.get(COUNTER) or 0) < tasks:
                time.sleep(0.02)
        done = time.monotonic()
        consumed = tasks - first_count
        worker_cpu = sum(cpu_seconds(process.pid) for process in processes) - workers_before
        redis_used = redis_cpu(state) - redis_before
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(30)
        state.close()
    return Ceiling(
        tasks=tasks,
        published_per_second=tasks / (published - started),
        publisher_cpu_ms=publisher_cpu / tasks * 1000,
        consumed_per_second=consumed / (done - first),
        worker_cpu_ms=worker_cpu / consumed * 1000,
        redis_cpu_ms=redis_used / consumed * 1000,
    )


def run(args: argparse.Namespace) -> int:
    ceiling = measure(args.redis, args.tasks, args.workers, args.concurrency, args.producers)
    table = Table(
        title=f"Celery ceiling: {args.tasks} no-op tasks, {args.workers} worker process(es) x "
        f"{args.concurrency} threads, OTPflow's Celery settings"
    )
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_row(
        f"published/s ({args.producers} threads, one process)",
        f"{ceiling.published_per_second:.0f} ({ceiling.publisher_cpu_ms:.2f} ms CPU each)",
    )
    table.add_row("consumed tasks/s (queue full)", f"{ceiling.consumed_per_second:.0f}")
    table.add_row(
        "CPU ms per task consumed",
        f"workers {ceiling.worker_cpu_ms:.2f}, redis {ceiling.redis_cpu_ms:.2f}",
    )
    table.add_row(
        f"flows/s at {args.tasks_per_flow} task(s) per flow",
        f"{ceiling.consumed_per_second / args.tasks_per_flow:.0f}",
    )
    console.print(table)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tasks", type=int, default=20_000)
    parser.add_argument("--workers", type=int, default=2, help="worker processes")
    parser.add_argument("--concurrency", type=int, default=4, help="threads per worker")
    parser.add_argument("--producers", type=int, default=8, help="threads publishing")
    parser.add_argument(
        "--tasks-per-flow",
        type=int,
        default=1,
        help="tasks a flow costs (1: a delivered flow is one send task)",
    )
    parser.add_argument("--redis", default="redis://127.0.0.1:6379")
    return run(parser.parse_args())


if __name__ == "__main__":
    sys.exit(main())
