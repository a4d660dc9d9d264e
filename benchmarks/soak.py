"""Soak: thousands of flows with mixed outcomes while workers are SIGKILLed and Redis is cut.

Every process reaches Redis (flow state and broker) through a TCP proxy this script controls.
While flows are submitted at a steady rate it SIGKILLs a random worker three times (starting a
replacement each time) and cuts Redis off for five seconds once. Then it waits for every
accepted flow to end and prints:

- accepted: flows the producer was told yes for (refused ones got ServiceUnavailable);
- terminal: accepted flows that ended (delivered, failed);
- lost: accepted flows that had not ended by the settle deadline;
- ended other than planned: flows whose end differs from what their outcome dictates, apart
  from those whose last send was in flight on a killed worker (at most once: counted apart);
- duplicate sends: (recipient, channel) pairs the simulator accepted more than once;
- whether the metrics' flows_started and flows_ended agree with the flows themselves.

    python benchmarks/soak.py --flows 5000
"""

from __future__ import annotations

import argparse
import contextlib
import random
import signal
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import redis
from rich.console import Console

from otpflow.cli.stack import Stack
from otpflow.flow.keyring import Keyring
from otpflow.flow.metrics import Metrics, field, series
from otpflow.flow.store import FlowStore
from otpflow.producers import OtpflowClient, ServiceUnavailable

# the fault tests' TCP proxy lives with them
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from tcp_proxy import TcpProxy

from common import progress_bars, progress_console, sms_then_whatsapp, wait_ended

console = Console()  # the results, on stdout; progress goes to stderr

SOAK_ENV = {
    "OTPFLOW_TIMER_POLL_SECONDS": "0.05",
    "OTPFLOW_RECOVERY_GRACE_SECONDS": "2",
    "OTPFLOW_SEND_BUDGET_SECONDS": "4",
    "OTPFLOW_PROVIDER_TIMEOUT_SECONDS": "2",
    # its flows go to numbers in a row, which the fraud guard would rightly block
    "OTPFLOW_FRAUD__MODE": "off",
}
# kind -> (rules for the recipient, SMS timeout, WhatsApp timeout, expected end). The last
# step waits 15 s: longer than the Redis cut plus the providers' postback retries, so a report
# the outage delayed still counts.
KINDS: dict[str, tuple[list[dict[str, Any]], int, int, str]] = {
    "sms_delivers": (
        [{"channel": "sms", "action": "deliver", "delay_ms": 300}],
        3,
        15,
        "delivered",
    ),
    "sms_silent": ([{"channel": "sms", "action": "never"}], 3, 15, "delivered"),
    "sms_fails": ([{"channel": "sms", "action": "fail", "delay_ms": 500}], 10, 15, "delivered"),
    "sms_rejected": ([{"channel": "sms", "action": "reject"}], 3, 15, "delivered"),
    "all_silent": ([{"channel": "*", "action": "never"}], 3, 15, "failed"),
}


@dataclass
class Flow:
    recipient: str
    kind: str
    request_id: str | None = None


def body(flow: Flow) -> dict[str, Any]:
    _, sms_timeout, whatsapp_timeout, _ = KINDS[flow.kind]
    return sms_then_whatsapp(flow.recipient, sms_timeout, whatsapp_timeout)


def run(args: argparse.Namespace) -> int:
    rng = random.Random(args.seed)
    redis_port = int(args.redis.rsplit(":", 1)[1])
    proxy = TcpProxy(redis_port).start()
    via_proxy = f"redis://127.0.0.1:{proxy.port}"
    state_direct = redis.Redis.from_url(f"{args.redis}/3")
    state_direct.flushdb()
    redis.Redis.from_url(f"{args.redis}/4").flushdb()

    flows = [Flow(f"91{8_000_000_000 + i}", rng.choice(list(KINDS))) for i in range(args.flows)]
    rules = [rule | {"recipient": f.recipient} for f in flows for rule in KINDS[f.kind][0]]
    stack = Stack(
        redis_url=f"{via_proxy}/3",
        broker_url=f"{via_proxy}/4",
        api_keys="soak:soak-key",
        extra_env=SOAK_ENV | {"OTPFLOW_LOG_LEVEL": "INFO"},
        log_dir=Path(args.logs) if args.logs else None,
    )
    faults: list[str] = []
    with stack:
        with progress_console.status(
            f"starting {args.workers} worker process(es), the simulator and the API"
        ):
            stack.start(workers=args.workers, concurrency=16)
        httpx.post(
            f"{stack.sim_url}/_sim/rules", json={"rules": rules}, timeout=60
        ).raise_for_status()
        client = OtpflowClient(stack.settings())
        duration = args.flows / args.rate
        plan = sorted(
            [(rng.uniform(0.15, 0.85) * duration, "kill") for _ in range(3)]
            + [(rng.uniform(0.3, 0.7) * duration, "cut")]
        )
        injector = threading.Thread(target=inject, args=(stack, proxy, plan, faults, rng))
        started = time.monotonic()
        injector.start()
        with progress_bars() as progress:
            bar = progress.add_task("submitting", total=len(flows))
            for index, flow in enumerate(flows):
                pause = started + index / args.rate - time.monotonic()
                if pause > 0:
                    time.sleep(pause)
                with contextlib.suppress(ServiceUnavailable):  # refused: stays without an id
                    flow.request_id = client.send(body(flow), workspace="soak")
                progress.update(bar, completed=index + 1)
            injector.join()
            accepted = [f for f in flows if f.request_id]
            ended = wait_ended(
                state_direct, [f.request_id or "" for f in accepted], args.settle, progress
            )
        requests = httpx.get(f"{stack.sim_url}/_sim/requests", timeout=60).json()["requests"]
        counted = Metrics(state_direct).read()
        client.close()
    proxy.stop()

    sends: dict[tuple[str, str], int] = {}
    for request in requests:
        if request["status_code"] == 200:
            key = (request["recipient"], request["channel"])
            sends[key] = sends.get(key, 0) + 1
    duplicates = sum(1 for n in sends.values() if n > 1)
    lost = [f for f in accepted if f.request_id not in ended]
    off_plan = [
        f for f in accepted if f.request_id in ended and ended[f.request_id] != KINDS[f.kind][3]
    ]
    # At most once: a last-step send in flight on a SIGKILLed worker is never sent again, so
    # its flow fails ("send_lease_expired"). That is the guarantee, not a loss.
    died_with_worker = [f for f in off_plan if last_send_died(state_direct, f.request_id or "")]
    unexpected = [f for f in off_plan if f not in died_with_worker]
    refused = len(flows) - len(accepted)
    for line in faults:
        console.print(line)
    console.print(
        f"flows submitted {len(flows)}, accepted {len(accepted)}, refused with 503 {refused}"
    )
    console.print(
        f"terminal {len(accepted) - len(lost)}, lost {len(lost)}, "
        f"ended other than planned {len(unexpected)}, duplicate sends {duplicates}"
    )
    console.print(
        f"failed because their last send was in flight on a killed worker (at most once): "
        f"{len(died_with_worker)}"
    )
    for flow in (lost + unexpected)[:10]:
        console.print(f"  {flow.kind} {flow.request_id} -> {ended.get(flow.request_id or '')}")
    # the metrics must tell the same story, whatever was killed or cut on the way
    outcomes = Counter(ended.values())
    metric_outcomes = {
        labels["outcome"]: int(value) for labels, value in series(counted, "flows_ended")
    }
    started = int(counted.get(field("flows_started"), 0))
    metrics_agree = started == len(accepted) and metric_outcomes == dict(outcomes)
    console.print(
        f"metrics: flows_started {started}, flows_ended {metric_outcomes} "
        f"({'agree' if metrics_agree else 'DISAGREE'} with the flows: "
        f"accepted {len(accepted)}, ended {dict(outcomes)})"
    )
    return 0 if not (lost or unexpected or duplicates) and metrics_agree else 1


def last_send_died(state: redis.Redis, flow_id: str) -> bool:
    """The flow failed because its last step's send task died mid-send."""
    # reading a flow needs no key: any keyring does
    view = FlowStore(state, Keyring.from_secret(""), ttl_seconds=3600).get(flow_id)
    return (
        view is not None
        and view.status == "failed"
        and view.steps[-1].reason == "send_lease_expired"
    )


def inject(
    stack: Stack, proxy: TcpProxy, plan: list[tuple[float, str]], log: list[str], rng: random.Random
) -> None:
    start = time.monotonic()
    replacements = 0
    for at, fault in plan:
        time.sleep(max(0.0, start + at - time.monotonic()))
        if fault == "kill":
            victim = rng.choice([n for n in stack.processes if n.startswith("worker")])
            stack.stop_process(victim, signal.SIGKILL)
            replacements += 1
            stack.start_worker(f"worker-r{replacements}", 16)
            log.append(f"{at:6.1f}s  SIGKILL {victim}, started worker-r{replacements}")
        else:
            proxy.cut()
            log.append(f"{at:6.1f}s  Redis cut off for 5 s")
            time.sleep(5)
            proxy.restore()


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--flows", type=int, default=5000)
    parser.add_argument(
        "--rate", type=float, default=30.0, help="flows submitted per second (keep below capacity)"
    )
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--settle", type=float, default=120.0, help="seconds to wait for the last flows to end"
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--logs", default="", help="folder for the processes' logs")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379")
    return run(parser.parse_args())


if __name__ == "__main__":
    sys.exit(main())
