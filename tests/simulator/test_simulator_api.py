"""Provider simulator over HTTP: provider endpoints, outcomes, postbacks and the /_sim API."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest

from otpflow.cli.stack import free_port
from otpflow.simulator.app import create_app

from harness import HttpRecorder, wait_for

API_KEY = "test-key"
WORKSPACE = "test-ws"
AUTH = {"x-api-key": API_KEY, "x-workspace-id": WORKSPACE}
SMS_PATH = "/api/ingest/sms/v1/message/send"


@pytest.fixture
def client(
    run_app: Callable[[Any], AbstractContextManager[httpx.Client]],
) -> Iterator[httpx.Client]:
    with run_app(create_app(api_key=API_KEY, workspace_id=WORKSPACE, default_delay_ms=50)) as http:
        yield http


def wait_len(get: Callable[[], list[Any]], n: int) -> list[Any]:
    """Poll ``get()`` until it returns exactly ``n`` items; return them."""
    found: list[Any] = []

    def check() -> bool:
        found[:] = get()
        return len(found) == n

    wait_for(check)
    return found


def sms(recipient: str = "919876543210", **extra: Any) -> dict[str, Any]:
    """A valid SMS send body."""
    return {
        "recipient": recipient,
        "message": "Your code is 123456",
        "sender_id": "OTPFLW",
        "route": "otp",
        **extra,
    }


def send_sms(client: httpx.Client, **extra: Any) -> Any:
    """POST a valid SMS (overridable fields) and return the response."""
    return client.post(SMS_PATH, headers=AUTH, json=sms(**extra))


def set_rules(client: httpx.Client, *rules: dict[str, Any]) -> None:
    resp = client.post("/_sim/rules", json={"rules": list(rules)})
    assert resp.status_code == 200, resp.text


def is_uuid4(value: str) -> bool:
    return uuid.UUID(value).version == 4 and str(uuid.UUID(value)) == value


INTERACTIVE = {
    "type": "button",
    "header": {"type": "text", "text": "Verify"},
    "body": {"text": "Is this your login?"},
    "footer": {"text": "OTPflow"},
    "action": {
        "buttons": [
            {"type": "reply", "reply": {"id": "yes", "title": "Yes"}},
            {"type": "reply", "reply": {"id": "no", "title": "No"}},
        ]
    },
}


# --- provider endpoints -------------------------------------------------------------------


def test_healthz(client: httpx.Client) -> None:
    assert client.get("/healthz").json() == {"ok": True}


def test_sms_accepted_reply_shape(client: httpx.Client) -> None:
    resp = send_sms(client)
    assert resp.status_code == 200
    body = resp.json()
    assert set(body) == {"success", "message", "request_id"}
    assert body["success"] is True
    assert body["message"] == "SMS request queued successfully"
    assert is_uuid4(body["request_id"])
    assert send_sms(client).json()["request_id"] != body["request_id"]


@pytest.mark.parametrize(
    "headers",
    [
        {"x-api-key": "wrong", "x-workspace-id": WORKSPACE},
        {"x-api-key": API_KEY, "x-workspace-id": "wrong"},
        {"x-api-key": API_KEY},
        {},
    ],
)
def test_sms_bad_credentials_401(client: httpx.Client, headers: dict[str, str]) -> None:
    resp = client.post(SMS_PATH, headers=headers, json=sms())
    assert resp.status_code == 401
    assert resp.json() == {"success": False, "message": "Invalid API key or workspace id"}
    [logged] = client.get("/_sim/requests").json()["requests"]
    assert logged["status_code"] == 401
    assert logged["request_id"] is None


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"recipient": None}, "recipient"),
        ({"recipient": "+919876543210"}, "recipient"),
        ({"recipient": "91 98765 43210"}, "recipient"),
        ({"recipient": "1234567"}, "recipient"),
        ({"message": ""}, "message"),
        ({"sender_id": None}, "sender_id"),
        ({"route": "bulk"}, "route"),
        ({"is_flash": "yes"}, "is_flash"),
        ({"post_back_url": "not-a-url"}, "post_back_url"),
        ({"colour": "blue"}, "colour"),
    ],
)
def test_sms_bad_field_400_names_field(
    client: httpx.Client, change: dict[str, Any], field: str
) -> None:
    body = sms()
    for key, value in change.items():
        if value is None:
            body.pop(key)
        else:
            body[key] = value
    resp = client.post(SMS_PATH, headers=AUTH, json=body)
    assert resp.status_code == 400
    reply = resp.json()
    assert reply["success"] is False
    assert set(reply) == {"success", "message"}
    assert reply["message"].startswith(f"{field}:"), reply["message"]


def test_sms_body_not_json_400(client: httpx.Client) -> None:
    resp = client.post(SMS_PATH, headers=AUTH, content=b"recipient=1")
    assert resp.status_code == 400
    assert resp.json()["success"] is False


@pytest.mark.parametrize(
    ("path", "body"),
    [
        (
            "/api/ingest/whatsapp/v1/template/send",
            {
                "template_name": "otp_code",
                "variables": {"1": "123456"},
                "language": "en",
            },
        ),
        (
            "/api/ingest/whatsapp/v1/message/interactive/reply-buttons/send",
            {"interactive": INTERACTIVE},
        ),
        (
            "/api/ingest/whatsapp/v1/message/text/send",
            {"text": "Code 123456", "preview_url": False},
        ),
    ],
)
def test_whatsapp_ingest_accepts_and_posts_back(
    client: httpx.Client, dlrs: HttpRecorder, path: str, body: dict[str, Any]
) -> None:
    full = {
        "recipient": "447700900123",
        "phone_id": "1029384756",
        "post_back_url": dlrs.url + "/dlr",
        "post_back_data": "wa-1",
        **body,
    }
    resp = client.post(path, headers=AUTH, json=full)
    assert resp.status_code == 200, resp.text
    reply = resp.json()
    assert reply["success"] is True
    assert reply["message"] == "WhatsApp request queued successfully"
    [dlr] = wait_for(lambda: dlrs.for_request(reply["request_id"]))
    assert dlr["channel"] == "whatsapp"
    assert dlr["status"] == "delivered"
    assert dlr["post_back_data"] == "wa-1"


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/api/ingest/whatsapp/v1/template/send", {}, "template_name"),
        ("/api/ingest/whatsapp/v1/message/text/send", {"text": " "}, "text"),
        (
            "/api/ingest/whatsapp/v1/message/interactive/reply-buttons/send",
            {
                "interactive": {
                    **INTERACTIVE,
                    "action": {
                        "buttons": [
                            {"type": "reply", "reply": {"id": str(i), "title": str(i)}}
                            for i in range(4)
                        ]
                    },
                }
            },
            "interactive.action.buttons",
        ),
        (
            "/api/ingest/whatsapp/v1/message/interactive/reply-buttons/send",
            {"interactive": {**INTERACTIVE, "header": {"type": "image"}}},
            "interactive.header",
        ),
        (
            "/api/ingest/whatsapp/v1/message/interactive/reply-buttons/send",
            {"interactive": {**INTERACTIVE, "body": {"text": "x" * 1025}}},
            "interactive.body.text",
        ),
    ],
)
def test_whatsapp_ingest_bad_field_400(
    client: httpx.Client, path: str, body: dict[str, Any], field: str
) -> None:
    full = {"recipient": "447700900123", "phone_id": "1029384756", **body}
    resp = client.post(path, headers=AUTH, json=full)
    assert resp.status_code == 400
    assert resp.json()["message"].startswith(f"{field}:"), resp.json()


CAMPAIGN_PATH = "/api/v1/campaign/whatsapp/message/send"


def campaign(to: str = "447700900123") -> dict[str, Any]:
    return {
        "to": to,
        "phoneId": "1029384756",
        "type": "interactive",
        "interactive": INTERACTIVE,
        "source": "API",
        "linkWithRecord": False,
        "submissionStatus": True,
    }


def test_campaign_send_reply_and_log(client: httpx.Client) -> None:
    resp = client.post(CAMPAIGN_PATH, headers=AUTH, json=campaign())
    assert resp.status_code == 200
    assert resp.json() == {"status": True, "message": "success"}
    [logged] = client.get("/_sim/requests").json()["requests"]
    assert logged["channel"] == "whatsapp"
    assert logged["recipient"] == "447700900123"
    assert is_uuid4(logged["request_id"])
    # No callback URL in this API: a manual DLR has nowhere to go.
    resp = client.post("/_sim/dlr", json={"request_id": logged["request_id"]})
    assert resp.status_code == 409


def test_campaign_errors_use_status_shape(client: httpx.Client) -> None:
    resp = client.post(CAMPAIGN_PATH, headers={"x-api-key": "bad"}, json=campaign())
    assert resp.status_code == 401
    assert resp.json()["status"] is False
    bad = campaign()
    bad["type"] = "text"
    resp = client.post(CAMPAIGN_PATH, headers=AUTH, json=bad)
    assert resp.status_code == 400
    assert resp.json()["message"].startswith("type:")
    set_rules(client, {"channel": "whatsapp", "recipient": "447700900123", "action": "reject"})
    resp = client.post(CAMPAIGN_PATH, headers=AUTH, json=campaign())
    assert resp.status_code == 400
    assert resp.json() == {"status": False, "message": "Recipient is blocked"}


# --- outcomes and postbacks -----------------------------------------------------------------


def test_deliver_posts_full_postback(client: httpx.Client, dlrs: HttpRecorder) -> None:
    resp = send_sms(client, post_back_url=dlrs.url + "/dlr?x=1", post_back_data="order-42")
    request_id = resp.json()["request_id"]
    [dlr] = wait_for(lambda: dlrs.for_request(request_id))
    assert set(dlr) == {
        "workspace_id",
        "type",
        "message_id",
        "request_id",
        "channel",
        "recipient",
        "status",
        "remark",
        "status_at",
        "post_back_data",
    }
    assert dlr["workspace_id"] == WORKSPACE
    assert dlr["type"] == "delivery_status"
    assert is_uuid4(dlr["message_id"])
    assert dlr["message_id"] != request_id
    assert dlr["channel"] == "sms"
    assert dlr["recipient"] == "919876543210"
    assert dlr["status"] == "delivered"
    assert dlr["remark"]
    assert dlr["status_at"].endswith("Z")
    assert datetime.fromisoformat(dlr["status_at"]).utcoffset() == timedelta(0)
    assert dlr["post_back_data"] == "order-42"
    assert dlrs.received[0]["path"] == "/dlr?x=1"
    [record] = wait_for(lambda: client.get("/_sim/postbacks").json()["postbacks"])
    assert record["url"] == dlrs.url + "/dlr?x=1"
    assert record["body"] == dlr
    assert record["response_status"] == 200
    assert record["error"] is None


def test_message_ids_distinct_and_null_post_back_data(
    client: httpx.Client, dlrs: HttpRecorder
) -> None:
    ids = [send_sms(client, post_back_url=dlrs.url).json()["request_id"] for _ in range(2)]
    reports = [wait_for(lambda rid=rid: dlrs.for_request(rid))[0] for rid in ids]
    assert reports[0]["message_id"] != reports[1]["message_id"]
    assert all(d["post_back_data"] is None for d in reports)


def test_fail_posts_failed_or_rule_status(client: httpx.Client, dlrs: HttpRecorder) -> None:
    set_rules(
        client,
        {"channel": "sms", "recipient": "15550000001", "action": "fail"},
        {"channel": "sms", "recipient": "15550000002", "action": "fail", "status": "expired"},
    )
    first = send_sms(client, recipient="15550000001", post_back_url=dlrs.url)
    second = send_sms(client, recipient="15550000002", post_back_url=dlrs.url)
    assert first.status_code == second.status_code == 200
    [dlr1] = wait_for(lambda: dlrs.for_request(first.json()["request_id"]))
    [dlr2] = wait_for(lambda: dlrs.for_request(second.json()["request_id"]))
    assert dlr1["status"] == "failed"
    assert dlr2["status"] == "expired"


def test_never_posts_nothing(client: httpx.Client, dlrs: HttpRecorder) -> None:
    set_rules(client, {"channel": "sms", "recipient": "15550000003", "action": "never"})
    never = send_sms(client, recipient="15550000003", post_back_url=dlrs.url)
    assert never.status_code == 200
    # A control message with a much longer delay, sent afterwards: once its DLR is in,
    # the "never" message's delay has long passed.
    control = send_sms(client, post_back_url=dlrs.url)
    client.post(
        "/_sim/dlr",
        json={"request_id": control.json()["request_id"], "status": "delivered", "delay_ms": 500},
    )
    wait_for(lambda: len(dlrs.for_request(control.json()["request_id"])) == 2)
    assert dlrs.for_request(never.json()["request_id"]) == []
    postbacks = client.get("/_sim/postbacks", params={"request_id": never.json()["request_id"]})
    assert postbacks.json()["postbacks"] == []


@pytest.mark.parametrize(
    ("action", "code", "message"),
    [("reject", 400, "Recipient is blocked"), ("error", 500, "Internal server error")],
)
def test_reject_and_error(
    client: httpx.Client, dlrs: HttpRecorder, action: str, code: int, message: str
) -> None:
    set_rules(client, {"channel": "*", "recipient": None, "action": action})
    resp = send_sms(client, post_back_url=dlrs.url)
    assert resp.status_code == code
    assert resp.json() == {"success": False, "message": message}
    [logged] = client.get("/_sim/requests").json()["requests"]
    assert logged["status_code"] == code
    assert logged["request_id"] is None


def test_slow_accepts_late_then_delivers(client: httpx.Client, dlrs: HttpRecorder) -> None:
    set_rules(client, {"channel": "sms", "action": "slow", "accept_delay_ms": 300})
    started = time.monotonic()
    resp = send_sms(client, post_back_url=dlrs.url)
    assert time.monotonic() - started >= 0.3
    assert resp.status_code == 200
    [dlr] = wait_for(lambda: dlrs.for_request(resp.json()["request_id"]))
    assert dlr["status"] == "delivered"


def test_per_recipient_rule_beats_per_channel_rule(
    client: httpx.Client, dlrs: HttpRecorder
) -> None:
    set_rules(
        client,
        {"channel": "sms", "recipient": None, "action": "reject"},
        {"channel": "*", "recipient": "15550000004", "action": "fail"},
    )
    assert send_sms(client, recipient="15550000005").status_code == 400
    resp = send_sms(client, recipient="15550000004", post_back_url=dlrs.url)
    assert resp.status_code == 200
    [dlr] = wait_for(lambda: dlrs.for_request(resp.json()["request_id"]))
    assert dlr["status"] == "failed"


def test_rules_given_at_start(
    run_app: Callable[[Any], AbstractContextManager[httpx.Client]],
) -> None:
    app = create_app(rules=[{"channel": "sms", "action": "error"}])
    with run_app(app) as c:
        headers = {"x-api-key": "sim-key", "x-workspace-id": "sim-workspace"}
        assert c.post(SMS_PATH, headers=headers, json=sms()).status_code == 500


def test_dlr_reposts_duplicate_and_late(client: httpx.Client, dlrs: HttpRecorder) -> None:
    request_id = send_sms(client, post_back_url=dlrs.url, post_back_data="d").json()["request_id"]
    [first] = wait_for(lambda: dlrs.for_request(request_id))
    resp = client.post("/_sim/dlr", json={"request_id": request_id, "status": "delivered"})
    assert resp.status_code == 200
    resp = client.post(
        "/_sim/dlr", json={"request_id": request_id, "status": "failed", "delay_ms": 10}
    )
    assert resp.status_code == 200
    reports = wait_len(lambda: dlrs.for_request(request_id), 3)
    assert sorted(d["status"] for d in reports) == ["delivered", "delivered", "failed"]
    assert {d["message_id"] for d in reports} == {first["message_id"]}
    assert {d["post_back_data"] for d in reports} == {"d"}


def test_dlr_unknown_request_404(client: httpx.Client) -> None:
    resp = client.post("/_sim/dlr", json={"request_id": str(uuid.uuid4())})
    assert resp.status_code == 404


def test_failed_postbacks_are_recorded_and_retried(
    client: httpx.Client, dlrs: HttpRecorder
) -> None:
    closed = HttpRecorder()
    dead_url = closed.url + "/dlr"
    closed.close()
    send_sms(client, post_back_url=dead_url)
    send_sms(client, post_back_url=dlrs.url + "/fail")
    records = wait_len(lambda: client.get("/_sim/postbacks").json()["postbacks"], 4)
    first = {r["url"]: r for r in records if r["attempt"] == 1}
    assert first[dead_url]["response_status"] is None and first[dead_url]["error"]
    assert first[dlrs.url + "/fail"]["response_status"] == 500
    assert first[dlrs.url + "/fail"]["error"] is None
    # each is tried again about a second later, as providers do
    retried = [r for r in records if r["attempt"] == 2]
    assert {r["url"] for r in retried} == {dead_url, dlrs.url + "/fail"}
    assert all(r["sent_at"] - first[r["url"]]["sent_at"] >= 0.9 for r in retried)
    assert [r["path"] for r in dlrs.received].count("/fail") >= 2


def test_accepted_postback_is_not_repeated(client: httpx.Client, dlrs: HttpRecorder) -> None:
    rid = send_sms(client, post_back_url=dlrs.url + "/ok").json()["request_id"]
    wait_for(lambda: dlrs.for_request(rid))
    time.sleep(1.3)
    assert len(dlrs.for_request(rid)) == 1


# --- control API ----------------------------------------------------------------------------


def test_requests_log_and_filters(client: httpx.Client) -> None:
    send_sms(client, recipient="15550000010")
    send_sms(client, recipient="15550000011")
    client.post(
        "/api/ingest/whatsapp/v1/message/text/send",
        headers=AUTH,
        json={"recipient": "15550000010", "phone_id": "p1", "text": "hi"},
    )
    rows = client.get("/_sim/requests").json()["requests"]
    assert [r["seq"] for r in rows] == [1, 2, 3]
    first = rows[0]
    assert set(first) == {
        "seq",
        "received_at",
        "path",
        "channel",
        "recipient",
        "headers",
        "body",
        "status_code",
        "request_id",
    }
    assert first["path"] == SMS_PATH
    assert first["headers"]["x-api-key"] == API_KEY
    assert first["body"] == sms(recipient="15550000010")
    assert first["status_code"] == 200
    assert is_uuid4(first["request_id"])
    assert abs(first["received_at"] - time.time()) < 60

    def count(**params: str) -> int:
        return len(client.get("/_sim/requests", params=params).json()["requests"])

    assert count(channel="sms") == 2
    assert count(channel="whatsapp") == 1
    assert count(recipient="15550000010") == 2
    assert count(channel="sms", recipient="15550000010") == 1
    assert count(recipient="15550000099") == 0


def test_rules_endpoint_validates_and_replaces(client: httpx.Client) -> None:
    assert client.post("/_sim/rules", json={"rules": [{"action": "explode"}]}).status_code == 400
    assert (
        client.post(
            "/_sim/rules", json={"rules": [{"channel": "fax", "action": "deliver"}]}
        ).status_code
        == 400
    )
    assert client.post("/_sim/rules", json={"nope": []}).status_code == 400
    set_rules(client, {"channel": "sms", "action": "reject"})
    set_rules(client, {"channel": "whatsapp", "action": "reject"})
    assert [r["channel"] for r in client.get("/_sim/rules").json()["rules"]] == ["whatsapp"]
    assert send_sms(client).status_code == 200


def test_reset_clears_and_cancels(client: httpx.Client, dlrs: HttpRecorder) -> None:
    set_rules(client, {"channel": "sms", "action": "deliver", "delay_ms": 200})
    pending = send_sms(client, post_back_url=dlrs.url).json()["request_id"]
    assert client.post("/_sim/reset").json() == {"ok": True}
    assert client.get("/_sim/requests").json()["requests"] == []
    assert client.get("/_sim/rules").json()["rules"] == []
    assert client.post("/_sim/dlr", json={"request_id": pending}).status_code == 404
    control = send_sms(client, post_back_url=dlrs.url).json()["request_id"]
    client.post("/_sim/dlr", json={"request_id": control, "delay_ms": 600})
    wait_for(lambda: len(dlrs.for_request(control)) == 2)
    assert dlrs.for_request(pending) == []
    assert all(
        p["body"]["request_id"] == control
        for p in client.get("/_sim/postbacks").json()["postbacks"]
    )


def test_serve_runs_real_server() -> None:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "otpflow.simulator", "--port", str(port), "--delay-ms", "10"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:

        def healthy() -> bool:
            try:
                return httpx.get(f"http://127.0.0.1:{port}/healthz").json() == {"ok": True}
            except httpx.HTTPError:
                return proc.poll() is not None  # stop polling if the process died

        wait_for(healthy, timeout=15)
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_a_prefix_rule_changed_at_run_time_degrades_one_provider(
    client: httpx.Client, dlrs: HttpRecorder
) -> None:
    """Zixflow's rule for +1555 delivers none of them (a share of 0), set mid-run; a number
    outside the prefix, and the same prefix through another provider's rule, are untouched."""
    before = send_sms(client, recipient="15550000011", post_back_url=dlrs.url)
    set_rules(
        client,
        {
            "provider": "zixflow",
            "prefix": "1555",
            "action": "deliver",
            "deliver_share": 0,
            "delay_ms": 10,
            "delay_ms_max": 30,
        },
        {"provider": "messageflow", "prefix": "1555", "action": "never"},
    )
    during = send_sms(client, recipient="15550000012", post_back_url=dlrs.url)
    outside = send_sms(client, recipient="15560000013", post_back_url=dlrs.url)
    statuses = [
        wait_for(lambda reply=reply: dlrs.for_request(reply.json()["request_id"]))[0]["status"]
        for reply in (before, during, outside)
    ]
    assert statuses == ["delivered", "failed", "delivered"]
