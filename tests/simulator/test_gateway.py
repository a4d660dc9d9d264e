"""JSON gateway (seed 003) over HTTP: auth, per-item results, rules and the hook DLR."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

PATH = "/api/json.php"
PHONE = 380971234567

CHANNEL_PARAMS: dict[str, dict[str, Any]] = {
    "voice": {
        "message": "Your code is 100500",
        "voice": {"gender": "female", "language": "en-GB", "name": "en-GB-Standard-A"},
        "dtmf": False,
    },
    "telegram": {"message": "100500"},
    "viber": {"type": "text", "signature": "SenderID", "message": "Your code is 100500"},
    "whatsapp": {"signature": "SenderID", "message": "Your code is 1234"},
    "rcs": {"signature": "SenderID", "message": "Your code is 1234"},
    "sms": {"signature": "SenderID", "message": "Your code is 100500"},
}


def item(channel: str = "sms", item_id: int = 100500, **extra: Any) -> dict[str, Any]:
    return {
        "type": "pipeline",
        "pipeline": [channel],
        "id": item_id,
        "phone": PHONE,
        channel: CHANNEL_PARAMS[channel],
        **extra,
    }


def send(sim: Any, *items: dict[str, Any], auth: str = "gw-auth") -> Any:
    return sim.post(PATH, json={"auth": auth, "data": list(items)})


def test_seed_example_is_accepted(sim: Any) -> None:
    seed_item = {
        "type": "pipeline",
        "pipeline": ["voice", "telegram", "viber", "rcs", "sms"],
        "id": 100500,
        "phone": PHONE,
        **CHANNEL_PARAMS,
        "hook": "https://example.org/webhook/url.php",
    }
    resp = send(sim, seed_item)
    assert resp.status_code == 200, resp.text
    reply = resp.json()
    [result] = reply["data"]
    assert isinstance(result["data"]["msg_id"], int)
    assert reply == {
        "success": True,
        "data": [
            {
                "success": True,
                "data": {"id": 100500, "msg_id": result["data"]["msg_id"], "data": 1, "parts": 1},
            }
        ],
    }
    [row] = sim.requests()
    assert row["path"] == PATH
    assert row["channel"] == "voice"  # only pipeline[0] is "sent"
    assert row["recipient"] == str(PHONE)
    assert row["status_code"] == 200
    assert row["request_id"] == str(result["data"]["msg_id"])


@pytest.mark.parametrize("channel", sorted(CHANNEL_PARAMS))
def test_each_channel_is_logged_by_channel(sim: Any, channel: str) -> None:
    reply = send(sim, item(channel)).json()
    assert reply["data"][0]["success"] is True, reply
    [row] = sim.requests(channel=channel)
    assert row["recipient"] == str(PHONE)


def test_items_get_their_own_results_and_unique_msg_ids(sim: Any) -> None:
    reply = send(sim, item("sms", 1), item("viber", 2), item("telegram", 3)).json()
    assert [r["data"]["id"] for r in reply["data"]] == [1, 2, 3]
    msg_ids = [r["data"]["msg_id"] for r in reply["data"]]
    assert len(set(msg_ids)) == 3
    again = send(sim, item()).json()["data"][0]["data"]["msg_id"]
    assert again not in msg_ids
    assert [r["channel"] for r in sim.requests()] == ["sms", "viber", "telegram", "sms"]


@pytest.mark.parametrize("auth", ["wrong", "", None])
def test_access_denied(sim: Any, auth: str | None) -> None:
    resp = sim.post(PATH, json={"auth": auth, "data": [item()]})
    assert resp.status_code == 200
    assert resp.json() == {"success": False, "error": "Access denied"}
    [row] = sim.requests()
    assert (row["request_id"], row["recipient"], row["channel"]) == (None, str(PHONE), "sms")


def test_configured_auth(start_sim: Any) -> None:
    sim = start_sim(gateway_auth="secret")
    assert send(sim, item()).json() == {"success": False, "error": "Access denied"}
    assert send(sim, item(), auth="secret").json()["success"] is True


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", None])
def test_content_type_must_be_json(sim: Any, content_type: str | None) -> None:
    headers = {"content-type": content_type} if content_type else {}
    raw = json.dumps({"auth": "gw-auth", "data": [item()]}).encode()
    resp = sim.post(PATH, content=raw, headers=headers)
    assert resp.status_code == 400
    assert resp.json()["success"] is False
    ok = sim.post(PATH, content=raw, headers={"content-type": "application/json; charset=utf-8"})
    assert ok.json()["data"][0]["success"] is True


@pytest.mark.parametrize(
    "payload", [b"not json", b"[]", json.dumps({"auth": "gw-auth", "data": []}).encode()]
)
def test_malformed_request_400(sim: Any, payload: bytes) -> None:
    resp = sim.post(PATH, content=payload, headers={"content-type": "application/json"})
    assert resp.status_code == 400
    assert resp.json()["success"] is False


@pytest.mark.parametrize(
    ("channel", "signature"),
    [("sms", ""), ("sms", "   "), ("sms", "TwelveChars!"), ("viber", "A" * 12), ("rcs", "")],
)
def test_error_in_alpha_name(sim: Any, channel: str, signature: str) -> None:
    bad = item(channel, 7)
    bad[channel] = {**bad[channel], "signature": signature}
    reply = send(sim, bad, item("sms", 8)).json()
    assert reply["success"] is True
    assert reply["data"][0] == {
        "success": False,
        "error": "Error in Alpha-name",
        "data": {"id": 7},
    }
    assert reply["data"][1]["success"] is True  # the other item is still sent
    assert [r["request_id"] is None for r in sim.requests()] == [True, False]


def test_eleven_character_signature_is_fine(sim: Any) -> None:
    ok = item()
    ok["sms"] = {**ok["sms"], "signature": "ElevenChars"}
    assert send(sim, ok).json()["data"][0]["success"] is True


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"phone": "380971234567"}, "phone"),
        ({"phone": 12345}, "phone"),
        ({"pipeline": ["fax"]}, "pipeline.0"),
        ({"pipeline": []}, "pipeline"),
        ({"type": "single"}, "type"),
        ({"hook": "not a url"}, "hook"),
        ({"sms": None}, "sms"),
        ({"sms": {"signature": "SenderID"}}, "sms.message"),
        ({"colour": "blue"}, "colour"),
    ],
)
def test_bad_item_field(sim: Any, change: dict[str, Any], field: str) -> None:
    bad = {k: v for k, v in {**item("sms", 9), **change}.items() if v is not None}
    reply = send(sim, bad).json()
    assert reply["success"] is True
    [result] = reply["data"]
    assert result["success"] is False
    assert result["error"].startswith(f"{field}:"), result
    assert result["data"] == {"id": 9}


def test_reject_and_error_rules(sim: Any) -> None:
    sim.rules(
        {"channel": "sms", "recipient": str(PHONE), "action": "reject"},
        {"channel": "voice", "recipient": str(PHONE), "action": "error"},
    )
    reply = send(sim, item("sms", 1), item("telegram", 2)).json()
    assert reply["data"][0] == {"success": False, "error": "Number is blocked", "data": {"id": 1}}
    assert reply["data"][1]["success"] is True
    resp = send(sim, item("voice", 3))
    assert resp.status_code == 500
    assert resp.json()["success"] is False
    assert [r["status_code"] for r in sim.requests(channel="voice")] == [500]


@pytest.mark.parametrize(
    ("channel", "rule", "status"),
    [
        ("sms", {"action": "deliver"}, "delivered"),
        ("voice", {"action": "deliver"}, "delivered"),
        ("viber", {"action": "fail"}, "undelivered"),
        ("telegram", {"action": "fail", "status": "expired"}, "expired"),
        ("whatsapp", {"action": "deliver", "status": "read"}, "read"),
    ],
)
def test_hook_dlr(sim: Any, dlrs: Any, channel: str, rule: dict[str, Any], status: str) -> None:
    sim.rules({"channel": channel, **rule})
    before = int(time.time())
    reply = send(sim, item(channel, 41, hook=dlrs.url + "/hook.php?x=1")).json()
    msg_id = reply["data"][0]["data"]["msg_id"]
    [dlr] = dlrs.wait("/hook.php?x=1")
    assert set(dlr) == {"id", "msg_id", "channel", "phone", "status", "time"}
    assert dlr["id"] == 41
    assert dlr["msg_id"] == msg_id
    assert dlr["channel"] == channel
    assert dlr["phone"] == PHONE
    assert dlr["status"] == status
    assert isinstance(dlr["time"], int)
    assert dlr["time"] >= before
    [record] = sim.wait(lambda: sim.postbacks(request_id=str(msg_id)))
    assert record["body"] == dlr


def test_manual_dlr_by_msg_id(sim: Any, dlrs: Any) -> None:
    sim.rules({"channel": "*", "action": "never"})
    msg_id = send(sim, item(hook=dlrs.url + "/h")).json()["data"][0]["data"]["msg_id"]
    resp = sim.dlr(msg_id)
    assert resp.json() == {"ok": True, "request_id": str(msg_id), "status": "delivered"}
    assert sim.dlr(str(msg_id), status="rejected", delay_ms=10).status_code == 200
    reports = dlrs.wait("/h", 2)
    assert sorted(r["status"] for r in reports) == ["delivered", "rejected"]
    assert {r["msg_id"] for r in reports} == {msg_id}
    no_hook = send(sim, item()).json()["data"][0]["data"]["msg_id"]
    assert sim.dlr(no_hook).status_code == 409
