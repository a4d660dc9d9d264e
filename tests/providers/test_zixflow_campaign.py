"""Seed 004's own WhatsApp body through the Zixflow adapter (its campaign API), MockTransport."""

from __future__ import annotations

import copy
import json
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from otpflow.config.settings import ZixflowSettings
from otpflow.flow.models import FlowRequest, Step
from otpflow.providers.base import Callback
from otpflow.providers.errors import ProviderBadReply, ProviderRejected
from otpflow.providers.zixflow import ZixflowProvider
from otpflow.simulator.schemas import CampaignSend

SETTINGS = ZixflowSettings(
    base_url="https://zix.example", api_key=SecretStr("k-123"), workspace_id="ws-9"
)
CALLBACK = Callback(url="https://otp.example/v1/dlr/zixflow?token=t0k", data="t0k")

# every field seed 004 documents, as a caller writes it
SEED_004 = {
    "to": "919876543210",
    "phoneId": "1029384756",
    "type": "interactive",
    "interactive": {
        "type": "button",
        "header": {"type": "text", "text": "ACME"},
        "body": {"text": "Your ACME code is 4821"},
        "footer": {"text": "Never share it"},
        "action": {"buttons": [{"type": "reply", "reply": {"id": "ok", "title": "Got it"}}]},
    },
    "source": "API",
    "linkWithRecord": False,
    "submissionStatus": True,
}


def step(data: dict[str, Any], **flow: Any) -> Step:
    message = {"channel": "whatsapp", "timeout": 30, "messageType": "interactive", "data": data}
    return FlowRequest.parse({"messages": [message], **flow}).steps[0]


def capture(reply: httpx.Response) -> tuple[ZixflowProvider, list[httpx.Request]]:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return reply

    return ZixflowProvider(SETTINGS, httpx.Client(transport=httpx.MockTransport(handler))), seen


def test_the_seed_body_goes_to_the_campaign_api_as_it_stands() -> None:
    adapter, seen = capture(httpx.Response(200, json={"status": True, "message": "success"}))
    message_id = adapter.send(step(SEED_004), CALLBACK)
    assert message_id.startswith("campaign-")  # the reply names none: one made here
    (request,) = seen
    assert request.method == "POST"
    assert str(request.url) == "https://zix.example/api/v1/campaign/whatsapp/message/send"
    assert request.headers["x-api-key"] == "k-123"
    assert request.headers["x-workspace-id"] == "ws-9"
    body = json.loads(request.content)
    assert body == SEED_004  # no post_back_url: that API takes none
    CampaignSend.model_validate(body)  # and the simulator's model of seed 004 takes it


def test_the_seed_defaults_are_sent() -> None:
    minimal = {key: SEED_004[key] for key in ("to", "phoneId", "interactive")}
    adapter, seen = capture(httpx.Response(200, json={"status": True, "message": "success"}))
    adapter.send(step(minimal), CALLBACK)
    (request,) = seen
    assert json.loads(request.content) == minimal | {
        "type": "interactive",
        "source": "API",
        "linkWithRecord": False,
        "submissionStatus": False,
    }


def test_a_generated_code_goes_into_the_seed_body() -> None:
    data = copy.deepcopy(SEED_004)
    data["interactive"]["body"]["text"] = "Your ACME code is {{code}}"
    adapter, seen = capture(httpx.Response(200, json={"status": True, "message": "success"}))
    adapter.send(step(data, otp={"length": 6}).with_code("482913"), CALLBACK)
    (request,) = seen
    assert json.loads(request.content)["interactive"]["body"]["text"] == "Your ACME code is 482913"


@pytest.mark.parametrize(
    ("reply", "error"),
    [
        (
            httpx.Response(200, json={"status": False, "message": "Session closed"}),
            ProviderRejected,
        ),
        (httpx.Response(200, json={"message": "success"}), ProviderBadReply),
        (httpx.Response(200, json={"status": "yes"}), ProviderBadReply),
    ],
)
def test_campaign_replies(reply: httpx.Response, error: type[Exception]) -> None:
    adapter, _ = capture(reply)
    with pytest.raises(error):
        adapter.send(step(SEED_004), CALLBACK)
