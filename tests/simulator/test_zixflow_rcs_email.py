"""Zixflow RCS and email over HTTP: replies, validation, rules and the Zixflow postback."""

from __future__ import annotations

from typing import Any

import pytest

from harness import is_uuid4

AUTH = {"x-api-key": "sim-key", "x-workspace-id": "sim-workspace"}
RCS_PATH = "/api/ingest/rcs/v1/message/send"
EMAIL_PATH = "/api/ingest/email/v1/send"
POSTBACK_KEYS = {
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


RCS_BODIES = {
    "text": {"type": "text", "text": "Your code is 123456"},
    "image": {"type": "image", "media_url": "https://cdn.example/otp.png", "caption": "code"},
    "video": {"type": "video", "media_url": "http://cdn.example/otp.mp4"},
    "audio": {"type": "audio", "media_url": "https://cdn.example/otp.mp3"},
    "document": {
        "type": "document",
        "media_url": "https://cdn.example/otp.pdf",
        "caption": "your code",
        "file_name": "otp.pdf",
    },
    "template": {"type": "template", "template_name": "otp", "variables": {"code": "123456"}},
}


def rcs_body(kind: str = "text", **extra: Any) -> dict[str, Any]:
    return {"recipient": "919876543210", "bot_id": "otpflow-bot", **RCS_BODIES[kind], **extra}


def email_body(**extra: Any) -> dict[str, Any]:
    return {
        "to": "user@example.com",
        "from": "otp@otpflow.example",
        "subject": "Your code",
        "text": "Your code is 123456",
        **extra,
    }


# --- RCS ------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", sorted(RCS_BODIES))
def test_rcs_accepts_every_type(sim: Any, kind: str) -> None:
    resp = sim.post(RCS_PATH, headers=AUTH, json=rcs_body(kind))
    assert resp.status_code == 200, resp.text
    reply = resp.json()
    assert set(reply) == {"success", "message", "request_id"}
    assert reply["success"] is True
    assert reply["message"] == "RCS request queued successfully"
    assert is_uuid4(reply["request_id"])
    [row] = sim.requests(channel="rcs")
    assert row["path"] == RCS_PATH
    assert row["recipient"] == "919876543210"
    assert row["status_code"] == 200
    assert row["request_id"] == reply["request_id"]
    assert row["body"] == rcs_body(kind)


def test_rcs_bad_credentials_401(sim: Any) -> None:
    resp = sim.post(RCS_PATH, headers={"x-api-key": "nope"}, json=rcs_body())
    assert resp.status_code == 401
    assert resp.json() == {"success": False, "message": "Invalid API key or workspace id"}
    [row] = sim.requests()
    assert (row["channel"], row["status_code"], row["request_id"]) == ("rcs", 401, None)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({**rcs_body(), "type": "carousel"}, "type"),
        ({k: v for k, v in rcs_body().items() if k != "type"}, "type"),
        ({k: v for k, v in rcs_body().items() if k != "bot_id"}, "bot_id"),
        ({**rcs_body(), "recipient": "+919876543210"}, "recipient"),
        ({**rcs_body(), "text": ""}, "text"),
        (rcs_body("image", caption=None) | {"media_url": "ftp://cdn.example/x.png"}, "media_url"),
        ({k: v for k, v in rcs_body("video").items() if k != "media_url"}, "media_url"),
        (rcs_body("text", media_url="https://cdn.example/x.png"), "media_url"),
        (rcs_body("image", file_name="x.png"), "file_name"),
        (rcs_body("template", variables=["123456"]), "variables"),
        ({k: v for k, v in rcs_body("template").items() if k != "template_name"}, "template_name"),
        (rcs_body("text", post_back_url="not-a-url"), "post_back_url"),
    ],
)
def test_rcs_bad_field_400_names_field(sim: Any, body: dict[str, Any], field: str) -> None:
    body = {k: v for k, v in body.items() if v is not None}
    resp = sim.post(RCS_PATH, headers=AUTH, json=body)
    assert resp.status_code == 400, resp.text
    reply = resp.json()
    assert set(reply) == {"success", "message"}
    assert reply["success"] is False
    assert reply["message"].startswith(f"{field}:"), reply["message"]


@pytest.mark.parametrize(
    ("rule", "status"),
    [
        ({"action": "deliver"}, "delivered"),
        ({"action": "fail"}, "failed"),
        ({"action": "fail", "status": "expired"}, "expired"),
    ],
)
def test_rcs_postback(sim: Any, dlrs: Any, rule: dict[str, Any], status: str) -> None:
    sim.rules({"channel": "rcs", "recipient": "919876543210", **rule})
    body = rcs_body(post_back_url=dlrs.url + "/rcs", post_back_data="flow-7")
    reply = sim.post(RCS_PATH, headers=AUTH, json=body).json()
    [dlr] = dlrs.wait("/rcs")
    assert set(dlr) == POSTBACK_KEYS
    assert dlr["type"] == "delivery_status"
    assert dlr["workspace_id"] == "sim-workspace"
    assert dlr["request_id"] == reply["request_id"]
    assert is_uuid4(dlr["message_id"])
    assert dlr["channel"] == "rcs"
    assert dlr["recipient"] == "919876543210"
    assert dlr["status"] == status
    assert dlr["post_back_data"] == "flow-7"
    assert dlr["status_at"].endswith("Z")


def test_rcs_rules_apply_to_rcs_only(sim: Any) -> None:
    sim.rules({"channel": "rcs", "action": "reject"})
    resp = sim.post(RCS_PATH, headers=AUTH, json=rcs_body())
    assert resp.status_code == 400
    assert resp.json() == {"success": False, "message": "Recipient is blocked"}
    sms = {
        "recipient": "919876543210",
        "message": "code",
        "sender_id": "OTPFLW",
        "route": "otp",
    }
    assert sim.post("/api/ingest/sms/v1/message/send", headers=AUTH, json=sms).status_code == 200


# --- email ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "extra",
    [
        {},
        {"text": None, "html": "<p>Your code is <b>123456</b></p>"},
        {"html": "<b>123456</b>", "reply_to": "help@otpflow.example"},
    ],
)
def test_email_accepted(sim: Any, extra: dict[str, Any]) -> None:
    body = {k: v for k, v in email_body(**extra).items() if v is not None}
    resp = sim.post(EMAIL_PATH, headers=AUTH, json=body)
    assert resp.status_code == 200, resp.text
    reply = resp.json()
    assert reply["success"] is True
    assert reply["message"] == "Email request queued successfully"
    assert is_uuid4(reply["request_id"])
    [row] = sim.requests(channel="email")
    assert row["recipient"] == "user@example.com"
    assert row["body"] == body
    assert row["request_id"] == reply["request_id"]


def test_email_bad_credentials_401(sim: Any) -> None:
    resp = sim.post(EMAIL_PATH, headers={**AUTH, "x-workspace-id": "other"}, json=email_body())
    assert resp.status_code == 401
    assert resp.json() == {"success": False, "message": "Invalid API key or workspace id"}


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"to": "user.example.com"}, "to"),
        ({"to": None}, "to"),
        ({"from": "OTPflow"}, "from"),
        ({"from": None}, "from"),
        ({"subject": ""}, "subject"),
        ({"text": None}, "text"),
        ({"reply_to": "nobody"}, "reply_to"),
        ({"post_back_url": "ftp://x"}, "post_back_url"),
        ({"cc": "boss@example.com"}, "cc"),
    ],
)
def test_email_bad_field_400_names_field(sim: Any, change: dict[str, Any], field: str) -> None:
    body = {k: v for k, v in email_body(**change).items() if v is not None}
    resp = sim.post(EMAIL_PATH, headers=AUTH, json=body)
    assert resp.status_code == 400, resp.text
    assert resp.json()["success"] is False
    assert resp.json()["message"].startswith(f"{field}:"), resp.json()


@pytest.mark.parametrize(("action", "status"), [("deliver", "delivered"), ("fail", "failed")])
def test_email_postback(sim: Any, dlrs: Any, action: str, status: str) -> None:
    sim.rules({"channel": "email", "recipient": "user@example.com", "action": action})
    body = email_body(post_back_url=dlrs.url + "/mail", post_back_data="m-1")
    reply = sim.post(EMAIL_PATH, headers=AUTH, json=body).json()
    [dlr] = dlrs.wait("/mail")
    assert set(dlr) == POSTBACK_KEYS
    assert dlr["request_id"] == reply["request_id"]
    assert dlr["channel"] == "email"
    assert dlr["recipient"] == "user@example.com"
    assert dlr["status"] == status
    assert dlr["post_back_data"] == "m-1"
    # a manual DLR re-posts the same shape
    assert sim.dlr(reply["request_id"], status="read").status_code == 200
    first, again = dlrs.wait("/mail", 2)
    assert again["status"] == "read"
    assert again["message_id"] == first["message_id"]


def test_email_rule_by_address(sim: Any) -> None:
    sim.rules({"channel": "email", "recipient": "blocked@example.com", "action": "reject"})
    blocked = sim.post(EMAIL_PATH, headers=AUTH, json=email_body(to="blocked@example.com"))
    assert blocked.status_code == 400
    assert blocked.json()["message"] == "Recipient is blocked"
    assert sim.post(EMAIL_PATH, headers=AUTH, json=email_body()).status_code == 200
