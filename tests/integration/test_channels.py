"""Every channel end to end, provider contracts through the real simulator, and failover."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from otpflow.cli.stack import (
    SIM_API_KEY,
    SIM_MESSAGEFLOW_KEY,
    SIM_MESSAGEFLOW_TOKEN,
    SIM_WORKSPACE,
)
from otpflow.flow.models import FlowRequest
from otpflow.providers import build_providers
from otpflow.providers.base import Callback

from harness import (
    REDIS_HOST,
    HttpRecorder,
    System,
    recipient,
    sms_step,
    start_system,
    stop_system,
    whatsapp_step,
)

pytestmark = pytest.mark.integration


def rcs_step(to: str, timeout: int = 30) -> dict[str, Any]:
    return {
        "channel": "rcs",
        "timeout": timeout,
        "messageType": "text",
        "data": {"recipient": to, "bot_id": "acme-bot", "text": "Your RCS code is 4821"},
    }


def email_step(address: str, timeout: int = 30) -> dict[str, Any]:
    return {
        "channel": "email",
        "timeout": timeout,
        "messageType": "",
        "data": {
            "to": address,
            "from": "otp@acme.example",
            "subject": "Your ACME code",
            "text": "Your code is 4821",
        },
    }


def test_four_channels_until_email_delivers(system: System) -> None:
    to, address = recipient(), f"user{recipient()}@example.com"
    system.rules(
        *(
            {"channel": channel, "recipient": to, "action": "fail", "delay_ms": 100}
            for channel in ("sms", "whatsapp", "rcs")
        ),
    )
    request_id = system.start(
        {"messages": [sms_step(to), whatsapp_step(to), rcs_step(to), email_step(address)]}
    )
    view = system.wait_terminal(request_id)
    assert view.status == "delivered" and view.delivered_step == 3
    assert [s.status for s in view.steps] == ["failed", "failed", "failed", "delivered"]
    assert [s.provider for s in view.steps] == ["zixflow", "zixflow", "zixflow", "smtp"]
    switches = [
        (e["channel"], e["to_channel"]) for e in view.events if e["type"] == "channel_switch"
    ]
    assert switches == [("sms", "whatsapp"), ("whatsapp", "rcs"), ("rcs", "email")]
    for channel in ("sms", "whatsapp", "rcs"):
        assert len(system.sim_requests(recipient=to, channel=channel)) == 1
    (mail,) = system.sim_requests(recipient=address, channel="email")
    assert mail["path"] == "smtp"
    assert mail["body"]["subject"] == "Your ACME code"
    assert "Your code is 4821" in mail["body"]["text"]


ZIXFLOW = {"x-api-key": SIM_API_KEY, "x-workspace-id": SIM_WORKSPACE}
CONTRACTS = [
    ("zixflow", "sms", "", "/api/ingest/sms/v1/message/send", ZIXFLOW),
    ("zixflow", "whatsapp", "template", "/api/ingest/whatsapp/v1/template/send", ZIXFLOW),
    ("zixflow", "whatsapp", "custom", "/api/ingest/whatsapp/v1/message/text/send", ZIXFLOW),
    (
        "zixflow",
        "whatsapp",
        "interactive",
        "/api/ingest/whatsapp/v1/message/interactive/reply-buttons/send",
        ZIXFLOW,
    ),
    ("zixflow", "rcs", "text", "/api/ingest/rcs/v1/message/send", ZIXFLOW),
    ("zixflow", "rcs", "image", "/api/ingest/rcs/v1/message/send", ZIXFLOW),
    ("zixflow", "rcs", "video", "/api/ingest/rcs/v1/message/send", ZIXFLOW),
    ("zixflow", "rcs", "audio", "/api/ingest/rcs/v1/message/send", ZIXFLOW),
    ("zixflow", "rcs", "document", "/api/ingest/rcs/v1/message/send", ZIXFLOW),
    ("zixflow", "rcs", "template", "/api/ingest/rcs/v1/message/send", ZIXFLOW),
    ("zixflow", "email", "", "/api/ingest/email/v1/send", {"x-workspace-id": SIM_WORKSPACE}),
    (
        "messageflow",
        "sms",
        "",
        "/v2.1/sms",
        {"application-key": SIM_MESSAGEFLOW_KEY, "authorization": SIM_MESSAGEFLOW_TOKEN},
    ),
    ("gateway", "voice", "", "/api/json.php", {"content-type": "application/json"}),
    ("gateway", "telegram", "", "/api/json.php", {}),
    ("gateway", "viber", "", "/api/json.php", {}),
    ("gateway", "sms", "", "/api/json.php", {}),
    ("gateway", "whatsapp", "custom", "/api/json.php", {}),
    ("gateway", "rcs", "text", "/api/json.php", {}),
    ("smtp", "email", "", "smtp", {}),
]


def data_for(channel: str, message_type: str, to: str) -> dict[str, Any]:
    address = f"user{to}@example.com"
    media = {
        "recipient": to,
        "bot_id": "acme-bot",
        "media_url": "https://cdn.example/m",
        "caption": "Your code is 4821",
    }
    return {
        ("sms", ""): sms_step(to)["data"],
        ("whatsapp", "template"): {
            "recipient": to,
            "phone_id": "p1",
            "template_name": "otp",
            "language": "en",
            "variables": {"1": "4821"},
        },
        ("whatsapp", "custom"): whatsapp_step(to)["data"],
        ("whatsapp", "interactive"): {
            "recipient": to,
            "phone_id": "p1",
            "interactive": {
                "type": "button",
                "header": {"type": "text", "text": "ACME"},
                "body": {"text": "Your code is 4821"},
                "footer": {"text": "Do not share"},
                "action": {"buttons": [{"type": "reply", "reply": {"id": "ok", "title": "OK"}}]},
            },
        },
        ("rcs", "text"): rcs_step(to)["data"],
        ("rcs", "image"): media,
        ("rcs", "video"): media,
        ("rcs", "audio"): media,
        ("rcs", "document"): media | {"file_name": "code.pdf"},
        ("rcs", "template"): {
            "recipient": to,
            "bot_id": "acme-bot",
            "template_name": "otp",
            "variables": {"code": "4821"},
        },
        ("email", ""): email_step(address)["data"],
        ("voice", ""): {
            "recipient": to,
            "message": "Your code is 4821",
            "voice": {"gender": "female", "language": "en-GB", "name": "Amy"},
        },
        ("telegram", ""): {"recipient": to, "code": "4821"},
        ("viber", ""): {
            "recipient": to,
            "type": "text",
            "signature": "ACME",
            "message": "Your code is 4821",
        },
    }[(channel, message_type)]


@pytest.mark.parametrize(
    ("provider", "channel", "message_type", "path", "headers"),
    CONTRACTS,
    ids=[f"{c[0]}-{c[1]}" for c in CONTRACTS],
)
def test_each_adapter_speaks_its_provider_api(
    system: System,
    provider: str,
    channel: str,
    message_type: str,
    path: str,
    headers: dict[str, str],
) -> None:
    to = recipient()
    data = data_for(channel, message_type, to)
    step = FlowRequest.parse(
        {
            "messages": [
                {"channel": channel, "timeout": 5, "messageType": message_type, "data": data}
            ]
        }
    ).steps[0]
    callback = Callback(url="http://127.0.0.1:9/v1/dlr/x?token=t", data="t")
    with httpx.Client(timeout=10) as client:
        adapter = build_providers(system.stack.settings(), client)[provider]
        message_id = adapter.send(step, callback)
    assert message_id
    who = data.get("to") or to
    (received,) = system.sim_requests(recipient=who, channel=channel)
    assert received["path"] == path
    assert received["status_code"] in (200, 201, 250)
    for name, value in headers.items():
        assert received["headers"][name] == value
    # the body the simulator parsed is the one the adapter meant to send, field for field
    if provider == "zixflow":
        assert received["body"] == adapter.render(step, callback)[1]
    elif provider in ("messageflow", "gateway"):
        assert received["body"] == adapter.render(step, callback)
    else:
        assert received["body"]["subject"] == data["subject"]
        assert received["body"]["rcpt_tos"] == [data["to"]]


@pytest.fixture(scope="module")
def failover_system(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[System, HttpRecorder]]:
    down = HttpRecorder(lambda _: 500)  # a provider that is down
    running = start_system(
        Path(tmp_path_factory.mktemp("failover")),
        state_url=f"{REDIS_HOST}/7",
        broker_url=f"{REDIS_HOST}/8",
        workers=1,
        env={
            "OTPFLOW_ROUTES__SMS": "zixflow,messageflow",
            "OTPFLOW_PROVIDERS__ZIXFLOW__BASE_URL": f"http://127.0.0.1:{down.port}",
            # failover in the configured order (adaptive routing explores: test_routing.py)
            "OTPFLOW_ROUTING__MODE": "static",
        },
    )
    yield running, down
    stop_system(running)
    down.close()


def test_a_provider_failing_three_times_fails_over_to_the_next(
    failover_system: tuple[System, HttpRecorder],
) -> None:
    system, down = failover_system
    to = recipient()
    system.rules({"channel": "sms", "recipient": to, "action": "deliver", "delay_ms": 100})
    request_id = system.start({"messages": [sms_step(to), whatsapp_step(to)]})
    view = system.wait_terminal(request_id)
    assert len(down.received) == 3
    assert view.status == "delivered" and view.delivered_step == 0
    assert view.steps[0].provider == "messageflow"
    failed = [e for e in view.events if e["type"] == "attempt_failed"]
    assert [(e["provider"], e["attempt"]) for e in failed] == [
        ("zixflow", 1),
        ("zixflow", 2),
        ("zixflow", 3),
    ]
    (sent,) = system.sim_requests(recipient=to, channel="sms")
    assert sent["path"] == "/v2.1/sms"


def test_gateway_channels_end_to_end(system: System) -> None:
    to = recipient()
    system.rules(
        {"channel": "voice", "recipient": to, "action": "fail", "delay_ms": 100},
        {
            "channel": "telegram",
            "recipient": to,
            "action": "fail",
            "delay_ms": 100,
            "status": "expired",
        },
        {"channel": "viber", "recipient": to, "action": "deliver", "delay_ms": 100},
    )
    steps = [
        {"channel": channel, "timeout": 30, "messageType": "", "data": data_for(channel, "", to)}
        for channel in ("voice", "telegram", "viber")
    ]
    view = system.wait_terminal(system.start({"messages": steps}))
    assert view.status == "delivered" and view.delivered_step == 2
    assert [(s.provider, s.dlr) for s in view.steps] == [
        ("gateway", "undelivered"),
        ("gateway", "expired"),
        ("gateway", "delivered"),
    ]
