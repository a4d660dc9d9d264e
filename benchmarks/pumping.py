"""Benchmark: an SMS pumping attack inside legitimate traffic, through the real API, workers and
the simulator, with the fraud guard at its defaults (enforce).

- Legitimate traffic: random valid mobile numbers across several countries, each flow with an
  OTPflow code (living --ttl seconds, so unused codes expire within the run and the
  conversion rule judges every country and prefix); 80 % of the people type their code a
  moment later (POST .../verify).
- The attack starts --attack-start seconds in: numbers in a row through --attack-prefixes
  prefixes of one country, never verified.

Printed: attack flows, and attack messages that reached a provider (counted at the simulator);
the same after the attack's first 50 flows; legitimate flows refused; seconds from the attack's
start to its first block and to its last prefix blocked. Targets (issue 15): at most 5 % of
attack flows after the first 50 reach a provider, at most 0.1 % of legitimate flows refused.

    python benchmarks/pumping.py --legit 3000 --attack 1000
"""

from __future__ import annotations

import argparse
import random
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

from otpflow.flow.keyring import Keyring

from common import bench_stack, progress_bars

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from harness import MOBILE_COUNTRIES, mobile_numbers, random_mobile

HEADERS = {"x-api-key": "bench-key", "x-workspace-id": "bench"}


def otp_flow(to: str, ttl: int) -> dict[str, Any]:
    return {
        "messages": [
            {
                "channel": "sms",
                "timeout": 30,
                "messageType": "",
                "data": {
                    "recipient": to,
                    "message": "Your code is {{code}}",
                    "sender_id": "BENCH",
                    "route": "otp",
                },
            }
        ],
        "otp": {"ttl": ttl},
    }


@dataclass
class Sent:
    kind: str  # "legit" or "attack"
    to: str
    at: float
    status: int = 0
    reason: str = ""
    request_id: str = ""


@dataclass
class Tally:
    sent: list[Sent] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def schedule(args: argparse.Namespace, rng: random.Random) -> list[tuple[float, str, str, bool]]:
    """(seconds from the start, kind, number, whether the person verifies) for every flow, in
    time order."""
    plan = [
        (
            index / args.legit_rate,
            "legit",
            random_mobile(rng.choice(MOBILE_COUNTRIES), rng),
            rng.random() < args.verified,
        )
        for index in range(args.legit)
    ]
    per_prefix = -(-args.attack // args.attack_prefixes)
    attack_numbers = [
        number
        for prefix in range(args.attack_prefixes)
        for number in mobile_numbers(args.attack_country, per_prefix, first=5000 + 1000 * prefix)
    ]
    # the attacker dials through its prefixes side by side, number after number
    interleaved = [
        attack_numbers[prefix * per_prefix + i]
        for i in range(per_prefix)
        for prefix in range(args.attack_prefixes)
    ][: args.attack]
    plan += [
        (args.attack_start + index / args.attack_rate, "attack", number, False)
        for index, number in enumerate(interleaved)
    ]
    return sorted(plan)


def run(args: argparse.Namespace) -> int:
    rng = random.Random(args.seed)
    plan = schedule(args, rng)
    env = {"OTPFLOW_FRAUD__MODE": "enforce", "OTPFLOW_LIMITS__WORKSPACE_RPS": "1000"}
    with bench_stack(args.redis, args.workers, args.concurrency, extra_env=env) as stack:
        # the person types the code they got: the worker's own HMAC of the flow id
        keyring = Keyring.from_secret(stack.secret)
        api = httpx.Client(base_url=stack.api_url, headers=HEADERS, timeout=30)
        sim = httpx.Client(base_url=stack.sim_url, timeout=30)
        sim.post(
            "/_sim/rules", json={"rules": [{"channel": "sms", "action": "deliver"}]}
        ).raise_for_status()
        tally = Tally()
        verifier = ThreadPoolExecutor(8)

        def verify_later(one: Sent, due: float) -> None:
            # the person reads the SMS and types the code a moment later
            time.sleep(max(0.0, due - time.monotonic()))
            code = keyring.code(one.request_id, 6)
            api.post(f"/v1/otpflow/{one.request_id}/verify", json={"code": code})

        def send(kind: str, to: str, at: float, verifies: bool) -> None:
            reply = api.post("/v1/otpflow", json=otp_flow(to, args.ttl))
            one = Sent(kind, to, at, reply.status_code)
            if reply.status_code == 200:
                one.request_id = reply.json()["request_id"]
                if verifies:
                    verifier.submit(verify_later, one, time.monotonic() + args.verify_after)
            else:
                one.reason = str(reply.json().get("reason") or reply.json().get("message"))
            with tally.lock:
                tally.sent.append(one)
            progress.advance(bar)

        with progress_bars() as progress, ThreadPoolExecutor(args.producers) as pool:
            bar = progress.add_task("flows", total=len(plan))
            start = time.monotonic()
            wall_start = time.time()
            for at, kind, to, verifies in plan:
                pause = start + at - time.monotonic()
                if pause > 0:
                    time.sleep(pause)
                pool.submit(send, kind, to, at, verifies)
        verifier.shutdown(wait=True)
        accepted = sum(1 for one in tally.sent if one.status == 200)
        requests = wait_for_sends(sim, accepted)
        blocks = api.get("/v1/fraud/blocks").json()["blocks"]
    return report(args, tally.sent, blocks, requests, wall_start)


def wait_for_sends(sim: httpx.Client, accepted: int, patience: float = 60) -> list[Any]:
    """The simulator's requests once every accepted flow's SMS has reached it (or, after
    ``patience`` seconds, as many as did: the count is then printed as it is)."""
    ends = time.monotonic() + patience
    while True:
        requests: list[Any] = sim.get("/_sim/requests").json()["requests"]
        if len(requests) >= accepted or time.monotonic() > ends:
            return requests
        time.sleep(0.5)


def report(
    args: argparse.Namespace,
    sent: list[Sent],
    blocks: list[dict[str, Any]],
    requests: list[dict[str, Any]],
    wall_start: float,
) -> int:
    at_provider = {request["recipient"] for request in requests}
    attack = sorted((s for s in sent if s.kind == "attack"), key=lambda s: s.at)
    legit = [s for s in sent if s.kind == "legit"]
    attack_through = [s for s in attack if s.to in at_provider]
    after_first = attack[50:]
    through_after = [s for s in after_first if s.to in at_provider]
    legit_refused = [s for s in legit if s.status == 403]  # by the fraud guard
    legit_other = [s for s in legit if s.status not in (200, 403)]
    attack_start = wall_start + args.attack_start
    block_times = sorted(
        float_since(block) - attack_start
        for block in blocks
        if block["country"] == args.attack_country
    )
    share_after = len(through_after) / max(1, len(after_first))
    share_refused = len(legit_refused) / max(1, len(legit))

    table = Table(title=f"SMS pumping: {len(legit)} legitimate flows, {len(attack)} attack flows")
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_row("attack flows that reached a provider", f"{len(attack_through)} of {len(attack)}")
    table.add_row(
        "  after the first 50 (target <= 5 %)",
        f"{len(through_after)} of {len(after_first)} ({share_after:.1%})",
    )
    table.add_row(
        "legitimate flows refused (target <= 0.1 %)",
        f"{len(legit_refused)} of {len(legit)} ({share_refused:.2%})",
    )
    reasons: dict[str, int] = {}
    for s in legit_refused:
        reasons[s.reason] = reasons.get(s.reason, 0) + 1
    if reasons:
        table.add_row("  why", ", ".join(f"{k} {v}" for k, v in sorted(reasons.items())))
    if legit_other:
        # a random number drawn twice meets its own running flow (409): not the guard
        table.add_row("legitimate flows answered otherwise", str(len(legit_other)))
    table.add_row(
        "attack start -> first block",
        f"{block_times[0]:.1f} s" if block_times else "no block",
    )
    table.add_row(
        f"attack start -> last of {args.attack_prefixes} prefixes blocked",
        f"{block_times[-1]:.1f} s" if len(block_times) >= args.attack_prefixes else "not all",
    )
    table.add_row("blocks", ", ".join(f"{b['value']} {b['reason']}" for b in blocks) or "none")
    Console().print(table)
    met = share_after <= 0.05 and share_refused <= 0.001
    print("targets met" if met else "targets NOT met")
    return 0 if met else 1


def float_since(block: dict[str, Any]) -> float:
    from datetime import datetime

    return datetime.fromisoformat(block["since"].replace("Z", "+00:00")).timestamp()


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--legit", type=int, default=3000, help="legitimate flows")
    parser.add_argument("--legit-rate", type=float, default=20, help="legitimate flows/s")
    parser.add_argument("--attack", type=int, default=1000, help="attack flows")
    parser.add_argument("--attack-rate", type=float, default=20, help="attack flows/s")
    parser.add_argument("--attack-start", type=float, default=10, help="seconds in")
    parser.add_argument("--attack-country", default="GB")
    parser.add_argument("--attack-prefixes", type=int, default=3)
    parser.add_argument("--verified", type=float, default=0.8, help="share of people verifying")
    parser.add_argument("--verify-after", type=float, default=2.0, help="seconds to type it")
    parser.add_argument(
        "--ttl",
        type=int,
        default=30,
        help="seconds a code lives: short enough that codes expire unverified within the run, "
        "so the conversion rule judges (and may refuse) legitimate traffic too",
    )
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--producers", type=int, default=16)
    parser.add_argument("--seed", type=int, default=15)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379")
    return run(parser.parse_args())


if __name__ == "__main__":
    sys.exit(main())
