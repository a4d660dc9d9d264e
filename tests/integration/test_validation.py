"""Bad requests are refused whole by the live API: 400 naming the field, nothing kept or sent."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from harness import HEADERS, System, recipient, sms_step, whatsapp_step

pytestmark = pytest.mark.integration

TO = recipient()


def flow(*steps: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"messages": list(steps), **extra}


def with_data(step: dict[str, Any], **changes: Any) -> dict[str, Any]:
    step = copy.deepcopy(step)
    for name, value in changes.items():
        if value is None:
            step["data"].pop(name)
        else:
            step["data"][name] = value
    return step


def with_step(step: dict[str, Any], **changes: Any) -> dict[str, Any]:
    return {**copy.deepcopy(step), **changes}


INTERACTIVE = {
    "channel": "whatsapp",
    "timeout": 30,
    "messageType": "interactive",
    "data": {
        "recipient": TO,
        "phone_id": "p1",
        "interactive": {
            "type": "button",
            "body": {"text": "Your code is 4821"},
            "action": {"buttons": [{"type": "reply", "reply": {"id": "ok", "title": "OK"}}]},
        },
    },
}

INVALID: list[tuple[str, Any, str]] = [
    ("no messages", {"messages": []}, "messages"),
    ("messages missing", {"webhookurl": "https://app.example/x"}, "messages"),
    ("timeout 301", flow(with_step(sms_step(TO), timeout=301)), "messages.0.timeout"),
    (
        "timeout -1",
        flow(sms_step(TO), with_step(whatsapp_step(TO), timeout=-1)),
        "messages.1.timeout",
    ),
    ("timeout as text", flow(with_step(sms_step(TO), timeout="30")), "messages.0.timeout"),
    ("timeout fractional", flow(with_step(sms_step(TO), timeout=2.5)), "messages.0.timeout"),
    ("unknown channel", flow(with_step(sms_step(TO), channel="fax")), "messages.0.channel"),
    (
        "messageType not for sms",
        flow(with_step(sms_step(TO), messageType="template")),
        "messages.0.messageType",
    ),
    (
        "messageType not for whatsapp",
        flow(with_step(whatsapp_step(TO), messageType="video")),
        "messages.0.messageType",
    ),
    (
        "recipient with +",
        flow(with_data(sms_step(TO), recipient="+" + TO)),
        "messages.0.data.recipient",
    ),
    (
        "recipient with letters",
        flow(with_data(sms_step(TO), recipient="91987abc3210")),
        "messages.0.data.recipient",
    ),
    (
        "recipient too short",
        flow(with_data(sms_step(TO), recipient="12345")),
        "messages.0.data.recipient",
    ),
    ("empty text", flow(with_data(sms_step(TO), message="")), "messages.0.data.message"),
    (
        "missing sender_id",
        flow(with_data(sms_step(TO), sender_id=None)),
        "messages.0.data.sender_id",
    ),
    ("unknown route", flow(with_data(sms_step(TO), route="bulk")), "messages.0.data.route"),
    (
        "unknown field in data",
        flow(with_data(sms_step(TO), colour="blue")),
        "messages.0.data.colour",
    ),
    ("unknown field in step", flow(with_step(sms_step(TO), priority=1)), "messages.0.priority"),
    ("unknown top-level field", flow(sms_step(TO), webhook="https://x.example"), "webhook"),
    ("bad webhook url", flow(sms_step(TO), webhookurl="not a url"), "webhookurl"),
    (
        "post_back_url not http",
        flow(with_data(sms_step(TO), post_back_url="ftp://x.example/d")),
        "messages.0.data.post_back_url",
    ),
    ("empty whatsapp text", flow(with_data(whatsapp_step(TO), text="")), "messages.0.data.text"),
    (
        "missing phone_id",
        flow(with_data(whatsapp_step(TO), phone_id=None)),
        "messages.0.data.phone_id",
    ),
    (
        "interactive body too long",
        flow(
            {
                **INTERACTIVE,
                "data": {
                    **INTERACTIVE["data"],
                    "interactive": {
                        **INTERACTIVE["data"]["interactive"],
                        "body": {"text": "x" * 1025},
                    },
                },
            }
        ),
        "messages.0.data.interactive.body.text",
    ),
    (
        "interactive header too long",
        flow(
            {
                **INTERACTIVE,
                "data": {
                    **INTERACTIVE["data"],
                    "interactive": {
                        **INTERACTIVE["data"]["interactive"],
                        "header": {"type": "text", "text": "h" * 61},
                    },
                },
            }
        ),
        "messages.0.data.interactive.header.text",
    ),
    (
        "four reply buttons",
        flow(
            {
                **INTERACTIVE,
                "data": {
                    **INTERACTIVE["data"],
                    "interactive": {
                        **INTERACTIVE["data"]["interactive"],
                        "action": {
                            "buttons": [
                                {"type": "reply", "reply": {"id": str(i), "title": "B"}}
                                for i in range(4)
                            ]
                        },
                    },
                },
            }
        ),
        "messages.0.data.interactive.action.buttons",
    ),
    ("eleven steps", flow(*[sms_step(TO)] * 11), "messages"),
    ("body not an object", [sms_step(TO)], "body"),
    ("data not an object", flow(with_step(sms_step(TO), data="hello")), "messages.0.data"),
]


def flow_keys(system: System) -> set[bytes]:
    return set(system.state.scan_iter("otpflow:flow:*"))


@pytest.mark.parametrize(("case", "body", "field"), INVALID, ids=[c[0] for c in INVALID])
def test_invalid_request_is_refused_whole(system: System, case: str, body: Any, field: str) -> None:
    before = flow_keys(system)
    reply = system.post_flow(body)
    assert reply.status_code == 400, reply.text
    answer = reply.json()
    assert answer["success"] is False
    assert field in [error["field"] for error in answer["errors"]], answer
    assert flow_keys(system) == before


def test_every_bad_field_is_named_at_once(system: System) -> None:
    body = flow(
        with_step(sms_step(TO), timeout=301), with_data(whatsapp_step(TO), recipient="+1", text="")
    )
    reply = system.post_flow(body)
    assert reply.status_code == 400
    fields = {error["field"] for error in reply.json()["errors"]}
    assert fields == {"messages.0.timeout", "messages.1.data.recipient", "messages.1.data.text"}


def test_invalid_json_is_a_400(system: System) -> None:
    reply = system.http.post(
        f"{system.stack.api_url}/v1/otpflow",
        content=b"{not json",
        headers=HEADERS | {"content-type": "application/json"},
    )
    assert reply.status_code == 400
    assert reply.json()["errors"] == [{"field": "body", "message": "invalid JSON"}]


def test_nothing_was_sent_for_invalid_requests(system: System) -> None:
    # runs after the cases above (same module, file order): none reached the simulator
    assert system.sim_requests(recipient=TO) == []


def test_wrong_api_key_is_refused(system: System) -> None:
    reply = system.http.post(
        f"{system.stack.api_url}/v1/otpflow",
        json=flow(sms_step(TO)),
        headers={"x-api-key": "wrong", "x-workspace-id": HEADERS["x-workspace-id"]},
    )
    assert reply.status_code == 401
