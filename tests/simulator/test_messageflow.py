"""MessageFlow SMS (seed 002) over HTTP: the envelope, auth, validation, rules, batched DLRs."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest

from harness import is_uuid4

PATH = "/v2.1/sms"
AUTH = {"Application-Key": "mf-app-key", "Authorization": "mf-token"}
PHONE = "+919876543210"


def body(**extra: Any) -> dict[str, Any]:
    return {
        "sender": "OTPflow",
        "message": "Your code is 123456",
        "phoneNumbers": [PHONE],
        "priority": True,
        "validity": 5,
        **extra,
    }


def test_accepted_201_envelope(sim: Any) -> None:
    resp = sim.post(PATH, headers=AUTH, json=body(externalId="flow-1"))
    assert resp.status_code == 201, resp.text
    reply = resp.json()
    [entry] = reply["data"]
    assert reply == {
        "meta": {"status": 201, "numberOfErrors": 0, "numberOfData": 1},
        "data": [{"smsId": entry["smsId"], "phoneNumber": PHONE, "externalId": "flow-1"}],
        "errors": [],
    }
    assert is_uuid4(entry["smsId"])
    [row] = sim.requests(channel="sms")
    assert row["path"] == PATH
    assert row["recipient"] == "919876543210"
    assert row["status_code"] == 201
    assert row["request_id"] == entry["smsId"]
    assert row["headers"]["application-key"] == "mf-app-key"


def test_minimal_body_and_several_numbers(sim: Any) -> None:
    numbers = ["+447700900001", "+447700900002"]
    minimal = {"sender": "OTPflow", "message": "hi", "phoneNumbers": numbers}
    resp = sim.post(PATH, headers=AUTH, json=minimal)
    assert resp.status_code == 201, resp.text
    data = resp.json()["data"]
    assert [d["phoneNumber"] for d in data] == numbers
    assert all(d["externalId"] is None for d in data)
    assert data[0]["smsId"] != data[1]["smsId"]
    assert resp.json()["meta"]["numberOfData"] == 2
    assert [(r["recipient"], r["request_id"]) for r in sim.requests()] == [
        ("447700900001", data[0]["smsId"]),
        ("447700900002", data[1]["smsId"]),
    ]


@pytest.mark.parametrize(
    "headers",
    [
        {"Application-Key": "wrong", "Authorization": "mf-token"},
        {"Application-Key": "mf-app-key", "Authorization": "wrong"},
        {"Application-Key": "mf-app-key", "Authorization": "Bearer mf-token"},
        {"Authorization": "mf-token"},
        {},
    ],
)
def test_bad_credentials_401(sim: Any, headers: dict[str, str]) -> None:
    resp = sim.post(PATH, headers=headers, json=body())
    assert resp.status_code == 401
    reply = resp.json()
    assert reply["meta"] == {"status": 401, "numberOfErrors": 1, "numberOfData": 0}
    assert reply["data"] == []
    [error] = reply["errors"]
    assert error["title"] == "Unauthorized"
    assert error["message"]
    [row] = sim.requests()
    assert (row["status_code"], row["request_id"], row["recipient"]) == (401, None, "919876543210")


def test_configured_credentials(start_sim: Any) -> None:
    sim = start_sim(messageflow_application_key="k2", messageflow_authorization="t2")
    assert sim.post(PATH, headers=AUTH, json=body()).status_code == 401
    headers = {"Application-Key": "k2", "Authorization": "t2"}
    assert sim.post(PATH, headers=headers, json=body()).status_code == 201


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"phoneNumbers": ["919876543210"]}, "phoneNumbers.0"),
        ({"phoneNumbers": ["+91 98765 43210"]}, "phoneNumbers.0"),
        ({"phoneNumbers": []}, "phoneNumbers"),
        ({"phoneNumbers": PHONE}, "phoneNumbers"),
        ({"phoneNumbers": [f"+4477009{i:05d}" for i in range(101)]}, "phoneNumbers"),
        ({"sender": None}, "sender"),
        ({"message": ""}, "message"),
        ({"priority": "yes"}, "priority"),
        ({"validity": 0}, "validity"),
        ({"validity": "5"}, "validity"),
        ({"webhookUrl": "example.org/dlr"}, "webhookUrl"),
        ({"externalId": 7}, "externalId"),
        ({"recipients": [PHONE]}, "recipients"),
    ],
)
def test_bad_field_400(sim: Any, change: dict[str, Any], field: str) -> None:
    sent = {k: v for k, v in body(**change).items() if v is not None}
    resp = sim.post(PATH, headers=AUTH, json=sent)
    assert resp.status_code == 400, resp.text
    reply = resp.json()
    assert reply["meta"] == {"status": 400, "numberOfErrors": 1, "numberOfData": 0}
    assert reply["data"] == []
    [error] = reply["errors"]
    assert error["title"] == "Validation error"
    assert error["source"] == field
    assert error["message"].startswith(f"{field}:"), error


def test_body_not_json_400(sim: Any) -> None:
    resp = sim.post(PATH, headers=AUTH, content=b"sender=x")
    assert resp.status_code == 400
    assert resp.json()["errors"][0]["source"] == "body"


def test_reject_and_error_rules(sim: Any) -> None:
    sim.rules(
        {"channel": "sms", "recipient": "447700900666", "action": "reject"},
        {"channel": "sms", "recipient": "447700900500", "action": "error"},
    )
    resp = sim.post(PATH, headers=AUTH, json=body(phoneNumbers=["+447700900666"]))
    assert resp.status_code == 400
    reply = resp.json()
    assert reply["meta"] == {"status": 400, "numberOfErrors": 1, "numberOfData": 0}
    [error] = reply["errors"]
    assert error["title"] == "Invalid phone number"
    assert error["source"] == "phoneNumbers.0"
    resp = sim.post(PATH, headers=AUTH, json=body(phoneNumbers=["+447700900500"]))
    assert resp.status_code == 500
    assert resp.json()["meta"]["status"] == 500
    assert resp.json()["data"] == []
    assert [r["status_code"] for r in sim.requests()] == [400, 500]
    assert all(r["request_id"] is None for r in sim.requests())


@pytest.mark.parametrize(
    ("rule", "status"),
    [
        ({"action": "deliver"}, "Delivered"),
        ({"action": "slow", "accept_delay_ms": 50}, "Delivered"),
        ({"action": "fail"}, "Undelivered"),
        ({"action": "fail", "status": "Expired"}, "Expired"),
    ],
)
def test_dlr_is_a_batched_list(sim: Any, dlrs: Any, rule: dict[str, Any], status: str) -> None:
    sim.rules({"channel": "sms", "recipient": "919876543210", **rule})
    sent = body(webhookUrl=dlrs.url + "/mf?acct=1", externalId="ext-9")
    sms_id = sim.post(PATH, headers=AUTH, json=sent).json()["data"][0]["smsId"]
    [report] = dlrs.wait("/mf?acct=1")
    assert isinstance(report, list)
    [item] = report
    assert set(item) == {"smsId", "phoneNumber", "externalId", "status", "statusTime"}
    assert item["smsId"] == sms_id
    assert item["phoneNumber"] == PHONE
    assert item["externalId"] == "ext-9"
    assert item["status"] == status
    assert datetime.fromisoformat(item["statusTime"]).utcoffset() == timedelta(0)
    [record] = sim.wait(lambda: sim.postbacks(request_id=sms_id))
    assert record["body"] == report
    assert record["response_status"] == 200


def test_never_posts_nothing_and_no_webhook_means_no_dlr(sim: Any, dlrs: Any) -> None:
    sim.rules({"channel": "sms", "recipient": "447700900003", "action": "never"})
    never = sim.post(
        PATH, headers=AUTH, json=body(phoneNumbers=["+447700900003"], webhookUrl=dlrs.url + "/n")
    )
    assert never.status_code == 201
    quiet = sim.post(PATH, headers=AUTH, json=body()).json()["data"][0]["smsId"]
    assert sim.dlr(quiet).status_code == 409
    control = sim.post(PATH, headers=AUTH, json=body(webhookUrl=dlrs.url + "/c")).json()
    sim.dlr(control["data"][0]["smsId"], delay_ms=300)
    dlrs.wait("/c", 2)
    assert dlrs.bodies("/n") == []


def test_manual_dlr_reposts_in_messageflow_format(sim: Any, dlrs: Any) -> None:
    sim.rules({"channel": "sms", "action": "never"})
    sms_id = sim.post(PATH, headers=AUTH, json=body(webhookUrl=dlrs.url + "/m")).json()["data"][0][
        "smsId"
    ]
    assert sim.dlr(sms_id).json() == {"ok": True, "request_id": sms_id, "status": "Delivered"}
    assert sim.dlr(sms_id, status="Expired", delay_ms=10).status_code == 200
    reports = dlrs.wait("/m", 2)
    assert sorted(r[0]["status"] for r in reports) == ["Delivered", "Expired"]
    assert {r[0]["smsId"] for r in reports} == {sms_id}
