"""Benchmark: what the fraud guard costs a new flow, side by side with the guard off.

A producer (OtpflowClient, as the API and Django use it) submits flows to random valid mobile
numbers in several countries; the guard alternates between off and enforce, block after
block, in one run on one Redis. No worker runs: this is the submit alone (validate, screen,
admit, store, publish, confirm). Printed per mode: submit latency p50/p99 and the CPU per flow
of this process and of Redis.

    python benchmarks/fraud_cost.py --flows 2000 --rounds 4
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

import redis
from rich.console import Console
from rich.table import Table

from otpflow.config.settings import Settings
from otpflow.producers import OtpflowClient

from common import own_cpu, percentile, redis_cpu

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from harness import MOBILE_COUNTRIES, random_mobile, sms_step

MODES = ("off", "enforce")


def run(args: argparse.Namespace) -> int:
    state, broker = f"{args.redis}/11", f"{args.redis}/10"
    for url in (state, broker):
        redis.Redis.from_url(url).flushdb()
    rng = random.Random(15)
    clients = {
        mode: OtpflowClient(
            Settings(
                redis_url=state,
                broker_url=broker,
                api_keys="bench:bench-key",
                fraud={"mode": mode},
            )
        )
        for mode in MODES
    }
    latencies: dict[str, list[float]] = {mode: [] for mode in MODES}
    cpu: dict[str, float] = dict.fromkeys(MODES, 0.0)
    redis_seconds: dict[str, float] = dict.fromkeys(MODES, 0.0)
    block = args.flows // (args.rounds * 2)
    for round_number in range(args.rounds):
        # ABBA within each pair of rounds: neither mode always goes first
        order = MODES if round_number % 2 == 0 else MODES[::-1]
        for mode in order:
            client = clients[mode]
            bodies = [
                {
                    "messages": [sms_step(random_mobile(rng.choice(MOBILE_COUNTRIES), rng))],
                    "allowConcurrent": True,  # a number drawn twice is no conflict here
                }
                for _ in range(block)
            ]
            cpu_before, redis_before = own_cpu(), redis_cpu(client.redis)
            for body in bodies:
                started = time.perf_counter()
                client.send(body, workspace="bench")
                latencies[mode].append((time.perf_counter() - started) * 1000)
            cpu[mode] += own_cpu() - cpu_before
            redis_seconds[mode] += redis_cpu(client.redis) - redis_before
    table = Table(title=f"submit, {block * args.rounds} flows per mode, one producer thread")
    for column in ("mode", "p50 ms", "p99 ms", "producer CPU ms/flow", "Redis CPU ms/flow"):
        table.add_column(column, justify="right")
    count = block * args.rounds
    for mode in MODES:
        table.add_row(
            mode,
            f"{percentile(latencies[mode], 50):.2f}",
            f"{percentile(latencies[mode], 99):.2f}",
            f"{cpu[mode] / count * 1000:.2f}",
            f"{redis_seconds[mode] / count * 1000:.3f}",
        )
    Console().print(table)
    for client in clients.values():
        client.close()
    for url in (state, broker):
        redis.Redis.from_url(url).flushdb()
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--flows", type=int, default=4000)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379")
    return run(parser.parse_args())


if __name__ == "__main__":
    sys.exit(main())
