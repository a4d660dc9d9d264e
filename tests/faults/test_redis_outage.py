"""Redis unreachable for 5 s: the API says 503 meanwhile, nothing is half-stored, and every
accepted flow ends correctly once Redis is back."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import httpx
import pytest

from harness import (
    HEADERS,
    RECOVERY_SECONDS,
    System,
    duplicate_sends,
    recipient,
    sms_step,
    statuses,
    wait_all_ended,
    whatsapp_step,
)

pytestmark = pytest.mark.faults


def test_redis_cut_for_five_seconds(fault_system: Callable[..., System]) -> None:
    system = fault_system()
    system.rules({"channel": "sms", "action": "deliver", "delay_ms": 200})
    # WhatsApp waits 15 s: longer than the cut plus the simulator's postback retries, so a
    # report the cut delayed still arrives in time
    results: list[tuple[str, int, str]] = []  # (recipient, HTTP status, request id)
    readiness: list[dict] = []
    stop = threading.Event()

    def produce() -> None:
        with httpx.Client(timeout=30) as http:
            while not stop.is_set():
                to = recipient()
                body = {"messages": [sms_step(to, timeout=3), whatsapp_step(to, timeout=15)]}
                reply = http.post(f"{system.stack.api_url}/v1/otpflow", json=body, headers=HEADERS)
                results.append((to, reply.status_code, reply.json().get("request_id", "")))
                time.sleep(0.05)

    producers = [threading.Thread(target=produce) for _ in range(3)]
    for thread in producers:
        thread.start()
    time.sleep(2)
    system.proxy.cut()
    cut_at = len(results)
    time.sleep(1)
    readiness.append(httpx.get(f"{system.stack.api_url}/readyz", timeout=30).json())
    time.sleep(4)
    system.proxy.restore()
    time.sleep(3)
    stop.set()
    for thread in producers:
        thread.join()
    readiness.append(httpx.get(f"{system.stack.api_url}/readyz", timeout=30).json())

    codes = [code for _, code, _ in results]
    print(f"{len(results)} requests: {codes.count(200)} accepted, {codes.count(503)} answered 503")
    assert set(codes) <= {200, 503}
    assert 503 in codes[cut_at:], "the API must answer 503 while Redis is unreachable"
    assert codes[-1] == 200, "the API must recover by itself"
    assert readiness[0] == {
        "ready": False,
        "checks": {"redis": "unreachable", "broker": "unreachable"},
    }
    assert readiness[1]["ready"] is True

    accepted = [request_id for _, code, request_id in results if code == 200]
    wait_all_ended(system, accepted, timeout=RECOVERY_SECONDS + 30)
    assert set(statuses(system, accepted)) == {"delivered"}

    # nothing half-stored: after one grace period and sweep, only accepted flows remain
    time.sleep(RECOVERY_SECONDS)
    stored = {key.decode().split(":")[2] for key in system.state.scan_iter("otpflow:flow:*")}
    assert stored == set(accepted)
    refused = {to for to, code, _ in results if code == 503}
    sent_to = {r["recipient"] for r in system.sim_requests()}
    assert not refused & sent_to, "a refused request reached a provider"
    assert duplicate_sends(system) == {}
