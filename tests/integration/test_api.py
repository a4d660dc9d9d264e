"""The production API on the live system: workspaces, idempotency, limits, cancel, codes,
report and webhook security."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from otpflow.flow.signing import dlr_token

from harness import (
    HEADERS,
    OTHER_HEADERS,
    REDIS_HOST,
    System,
    recipient,
    sms_step,
    start_system,
    stop_system,
    whatsapp_step,
)

pytestmark = pytest.mark.integration


def api(
    system: System, method: str, path: str, headers: dict[str, str] = HEADERS, **kwargs: Any
) -> Any:
    return system.http.request(method, f"{system.stack.api_url}{path}", headers=headers, **kwargs)


def waiting_flow(to: str, **extra: Any) -> dict[str, Any]:
    """SMS that is never delivered (30 s), then WhatsApp."""
    return {"messages": [sms_step(to, timeout=30), whatsapp_step(to)], **extra}


def test_a_workspace_sees_only_its_own_flows(system: System) -> None:
    to = recipient()
    system.rules({"channel": "sms", "recipient": to, "action": "never"})
    request_id = system.start(waiting_flow(to))
    for method, path, body in [
        ("GET", "", None),
        ("POST", "/cancel", None),
        ("POST", "/verify", {"code": "1234"}),
    ]:
        reply = api(system, method, f"/v1/otpflow/{request_id}{path}", OTHER_HEADERS, json=body)
        assert reply.status_code == 404, (method, path)
    assert system.flow(request_id).status == "in_progress"  # the other workspace changed nothing
    assert api(system, "GET", f"/v1/otpflow/{request_id}").status_code == 200
    wrong = {"x-api-key": "other-key", "x-workspace-id": HEADERS["x-workspace-id"]}
    assert api(system, "GET", f"/v1/otpflow/{request_id}", wrong).status_code == 401
    assert api(system, "POST", f"/v1/otpflow/{request_id}/cancel").status_code == 200


def test_idempotent_retry_returns_the_same_flow_and_sends_once(system: System) -> None:
    to = recipient()
    body = waiting_flow(to)
    key = {"Idempotency-Key": str(uuid.uuid4())}
    first = api(system, "POST", "/v1/otpflow", HEADERS | key, json=body)
    second = api(system, "POST", "/v1/otpflow", HEADERS | key, json=body)
    assert first.status_code == second.status_code == 200
    assert first.json()["request_id"] == second.json()["request_id"]
    other = api(system, "POST", "/v1/otpflow", HEADERS | key, json=waiting_flow(recipient()))
    assert other.status_code == 409
    system.wait(lambda: system.sim_requests(recipient=to, channel="sms"), what="the SMS")
    assert len(system.sim_requests(recipient=to, channel="sms")) == 1
    api(system, "POST", f"/v1/otpflow/{first.json()['request_id']}/cancel")


def test_sixth_flow_to_one_number_in_ten_minutes_is_refused(system: System) -> None:
    to = recipient()
    system.rules({"channel": "sms", "recipient": to, "action": "never"})
    body = waiting_flow(to, allowConcurrent=True)
    ids = [api(system, "POST", "/v1/otpflow", json=body).json()["request_id"] for _ in range(5)]
    sixth = api(system, "POST", "/v1/otpflow", json=body)
    assert sixth.status_code == 429
    assert 1 <= int(sixth.headers["Retry-After"]) <= 600
    for request_id in ids:
        api(system, "POST", f"/v1/otpflow/{request_id}/cancel")


def test_one_active_flow_per_recipient_unless_opted_out(system: System) -> None:
    to = recipient()
    system.rules({"channel": "sms", "recipient": to, "action": "never"})
    first = system.start(waiting_flow(to))
    again = api(system, "POST", "/v1/otpflow", json=waiting_flow(to))
    assert again.status_code == 409 and first in again.json()["message"]
    assert (
        api(system, "POST", "/v1/otpflow", json=waiting_flow(to, allowConcurrent=True)).status_code
        == 200
    )
    api(system, "POST", f"/v1/otpflow/{first}/cancel")
    # the first one ended: the recipient is free again
    later = system.start(waiting_flow(to))
    api(system, "POST", f"/v1/otpflow/{later}/cancel")


def otp_flow(to: str, hook: str | None = None) -> dict[str, Any]:
    sms = sms_step(to, timeout=30, text="Your ACME code is {{code}}")
    whatsapp = whatsapp_step(to, text="Your ACME code is {{code}}")
    body: dict[str, Any] = {
        "messages": [sms, whatsapp],
        "otp": {"length": 6, "ttl": 300, "max_attempts": 5},
    }
    if hook:
        body |= {"webhookurl": hook, "webhookEvents": ["channel_switch", "terminal"]}
    return body


def code_sent_to(system: System, to: str) -> str:
    (sms,) = system.wait(
        lambda: system.sim_requests(recipient=to, channel="sms"), what="the SMS with the code"
    )
    match = re.fullmatch(r"Your ACME code is (\d{6})", sms["body"]["message"])
    assert match, "the SMS carries a generated six-digit code"
    return match.group(1)


def test_right_code_ends_the_flow_before_the_fallback(system: System) -> None:
    to, hook = recipient(), f"/terminal/{recipient()}"
    system.rules({"channel": "sms", "recipient": to, "action": "never"})
    request_id = system.start(otp_flow(to, system.webhooks.at(hook)))
    code = code_sent_to(system, to)
    wrong = str((int(code) + 1) % 1_000_000).zfill(6)
    miss = api(system, "POST", f"/v1/otpflow/{request_id}/verify", json={"code": wrong})
    assert miss.status_code == 400 and miss.json()["attempts_left"] == 4
    right = api(system, "POST", f"/v1/otpflow/{request_id}/verify", json={"code": code})
    assert right.status_code == 200 and right.json()["status"] == "verified"
    again = api(system, "POST", f"/v1/otpflow/{request_id}/verify", json={"code": code})
    assert again.status_code == 409
    view = system.flow(request_id)
    assert view.status == "verified" and view.steps[1].status == "skipped"
    (terminal,) = system.wait(lambda: system.webhooks.for_path(hook), what="terminal event")
    assert terminal["body"]["event"] == "terminal" and terminal["body"]["status"] == "verified"
    assert system.sim_requests(recipient=to, channel="whatsapp") == []
    assert system.state.exists(f"otpflow:flow:{request_id}:code") == 0  # code gone once used


def test_five_wrong_codes_lock_the_flow(system: System) -> None:
    to = recipient()
    system.rules({"channel": "sms", "recipient": to, "action": "never"})
    request_id = system.start(otp_flow(to))
    code = code_sent_to(system, to)
    wrong = str((int(code) + 7) % 1_000_000).zfill(6)
    answers = [
        api(system, "POST", f"/v1/otpflow/{request_id}/verify", json={"code": wrong})
        for _ in range(5)
    ]
    assert [a.status_code for a in answers] == [400, 400, 400, 400, 423]
    locked = api(system, "POST", f"/v1/otpflow/{request_id}/verify", json={"code": code})
    assert locked.status_code == 423, "even the right code is refused once locked"
    view = system.flow(request_id)
    assert view.status == "failed" and view.reason == "verification_locked"
    assert system.sim_requests(recipient=to, channel="whatsapp") == []


def test_cancel_during_the_sms_timeout_means_whatsapp_is_never_sent(system: System) -> None:
    to = recipient()
    system.rules({"channel": "sms", "recipient": to, "action": "never"})
    request_id = system.start({"messages": [sms_step(to, timeout=2), whatsapp_step(to)]})
    system.wait(lambda: system.flow(request_id).steps[0].status == "sent", what="SMS sent")
    assert api(system, "POST", f"/v1/otpflow/{request_id}/cancel").status_code == 200
    assert api(system, "POST", f"/v1/otpflow/{request_id}/cancel").status_code == 409
    time.sleep(3.5)  # past the SMS timeout: its check must find the flow cancelled
    view = system.flow(request_id)
    assert view.status == "cancelled" and view.steps[1].status == "skipped"
    assert system.sim_requests(recipient=to, channel="whatsapp") == []


def tampered(token: str) -> str:
    """The token with its last character changed (always changed, whatever it was)."""
    return token[:-1] + ("1" if token[-1] == "0" else "0")


def test_forged_reports_are_refused_and_change_nothing(system: System) -> None:
    to = recipient()
    system.rules({"channel": "sms", "recipient": to, "action": "never"})
    request_id = system.start(waiting_flow(to))
    system.wait(lambda: system.flow(request_id).steps[0].status == "sent", what="SMS sent")
    before = system.flow(request_id)
    body = {"status": "delivered", "request_id": "x", "channel": "sms"}
    for token in [
        None,
        "garbage",
        dlr_token("not-the-secret", "zixflow", request_id, 0),
        tampered(dlr_token(system.stack.secret, "zixflow", request_id, 0)),
    ]:
        params = {"token": token} if token else None
        reply = system.http.post(f"{system.stack.api_url}/v1/dlr/zixflow", params=params, json=body)
        assert reply.status_code == 401
    huge = system.http.post(
        f"{system.stack.api_url}/v1/dlr/zixflow", content=b"{" + b" " * 70_000 + b"}"
    )
    assert huge.status_code == 413
    after = system.flow(request_id)
    assert (after.status, after.steps, len(after.events)) == (
        before.status,
        before.steps,
        len(before.events),
    )
    api(system, "POST", f"/v1/otpflow/{request_id}/cancel")


@pytest.fixture(scope="module")
def strict_system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    """A system that refuses webhooks to private addresses (the default), with a low
    per-workspace request rate."""
    running = start_system(
        Path(tmp_path_factory.mktemp("strict")),
        state_url=f"{REDIS_HOST}/7",
        broker_url=f"{REDIS_HOST}/8",
        workers=1,
        env={"OTPFLOW_ALLOW_PRIVATE_WEBHOOKS": "false", "OTPFLOW_LIMITS__WORKSPACE_RPS": "5"},
    )
    yield running
    stop_system(running)


def test_a_private_address_in_a_webhook_url_is_a_400_without_the_setting(
    strict_system: System,
) -> None:
    # issue 12 item 1: refused at submit, naming the field, when the URL names the address
    system, to = strict_system, recipient()
    step = sms_step(to)
    step["data"] = step["data"] | {"post_back_url": "http://[::ffff:169.254.169.254]/dlr"}
    reply = system.post_flow(
        {"messages": [step], "webhookurl": "http://169.254.169.254/latest/meta-data"}
    )
    assert reply.status_code == 400
    fields = sorted(error["field"] for error in reply.json()["errors"])
    assert fields == ["messages.0.data.post_back_url", "webhookurl"]


def test_webhook_to_loopback_is_refused_without_the_setting(strict_system: System) -> None:
    # a name is left to delivery, which refuses what it resolves to (here the loopback)
    system, to = strict_system, recipient()
    system.rules({"channel": "sms", "recipient": to, "action": "fail", "delay_ms": 100})
    request_id = system.start(
        {
            "messages": [sms_step(to), whatsapp_step(to)],
            "webhookurl": system.webhooks.at("/switch").replace("127.0.0.1", "localhost"),
        }
    )
    system.wait(
        lambda: any(e["type"] == "webhook" for e in system.flow(request_id).events),
        what="the webhook outcome",
    )
    (event,) = [e for e in system.flow(request_id).events if e["type"] == "webhook"]
    assert event["result"] == "refused" and "private" in event["reason"]
    assert system.webhooks.for_path("/switch") == []


def test_a_workspace_over_its_request_rate_gets_429(strict_system: System) -> None:
    system = strict_system
    # the limit counts per clock second: start just after one begins, so all 8 fall in it
    time.sleep(1 - time.time() % 1 + 0.01)
    body = {"messages": []}  # refused after the rate check: nothing is sent
    codes = [api(system, "POST", "/v1/otpflow", json=body) for _ in range(8)]
    assert [c.status_code for c in codes].count(400) == 5
    limited = [c for c in codes if c.status_code == 429]
    assert len(limited) == 3 and all(c.headers["Retry-After"] == "1" for c in limited)
    other = api(system, "POST", "/v1/otpflow", OTHER_HEADERS, json=body)
    assert other.status_code == 400, "another workspace has its own budget"


def trickle(chunks: int, chunk: bytes = b" " * 64 * 1024) -> Iterator[bytes]:
    """A chunked body (no Content-Length) sent at 6.4 MB/s, as a slow or hostile client does."""
    for _ in range(chunks):
        yield chunk
        time.sleep(0.01)


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(lambda: b" " * 60 * 1024 * 1024, id="60 MB with Content-Length"),
        pytest.param(lambda: trickle(320), id="20 MB chunked over 3 s"),
    ],
)
def test_an_oversized_report_is_refused_at_once(system: System, body: Any) -> None:
    """The unauthenticated intake answers 413 as soon as the limit is passed and closes the
    connection: the server neither holds nor waits for the rest."""
    started = time.monotonic()
    reply = system.http.post(
        f"{system.stack.api_url}/v1/dlr/zixflow",
        content=body(),
        headers={"content-type": "application/json"},
    )
    took = time.monotonic() - started
    assert reply.status_code == 413
    assert reply.json()["max_bytes"] == 65536
    assert took < 1.5, f"the answer took {took:.1f} s"
    assert api(system, "GET", "/healthz").status_code == 200
