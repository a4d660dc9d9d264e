"""A 2xx reply that cannot be read is an ambiguous send, for every HTTP adapter.

The provider said yes at the HTTP level and may have the message (seen: a Zixflow 200 with an
HTML page had sent the SMS, and the failover to MessageFlow sent it again). So the send raises
:class:`AmbiguousSend`: the step ends and the next channel covers it, never the channel's next
provider. A 4xx stays a permanent refusal.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from otpflow.config.settings import GatewaySettings, MessageFlowSettings, ZixflowSettings
from otpflow.flow.models import Step
from otpflow.providers.base import Provider
from otpflow.providers.errors import (
    AmbiguousSend,
    PermanentProviderError,
    ProviderRejected,
)
from otpflow.providers.gateway import GatewayProvider
from otpflow.providers.messageflow import MessageFlowProvider
from otpflow.providers.zixflow import ZixflowProvider

from provider_contract import CALLBACK, PHONE, step

SMS = step(
    "sms", "", {"recipient": PHONE, "message": "Code 4821", "sender_id": "ACME", "route": "otp"}
)


def zixflow(client: httpx.Client) -> Provider:
    return ZixflowProvider(
        ZixflowSettings(base_url="https://zix.example", api_key=SecretStr("k"), workspace_id="w"),
        client,
    )


def messageflow(client: httpx.Client) -> Provider:
    settings = MessageFlowSettings(
        base_url="https://mf.example",
        application_key=SecretStr("app"),
        authorization=SecretStr("tok"),
    )
    return MessageFlowProvider(settings, client)


def gateway(client: httpx.Client) -> Provider:
    return GatewayProvider(
        GatewaySettings(base_url="https://gw.example", auth=SecretStr("a")), client
    )


# Each adapter: how it is built, and a 200 JSON reply that accepts the message but has no id.
ADAPTERS: dict[str, tuple[Any, dict[str, Any]]] = {
    "zixflow": (zixflow, {"success": True, "message": "SMS request queued successfully"}),
    "messageflow": (
        messageflow,
        {"meta": {"status": 201}, "data": [{"phoneNumber": "+" + PHONE}], "errors": []},
    ),
    "gateway": (gateway, {"success": True, "data": [{"success": True, "data": {"id": 1}}]}),
}

# Per adapter, replies whose shape is not the documented one.
ODD_SHAPES: list[tuple[str, dict[str, Any]]] = [
    ("zixflow", {"success": "yes", "request_id": "r-1"}),
    ("zixflow", {"request_id": "r-1"}),
    ("zixflow", {"success": True, "request_id": ["r-1"]}),
    ("messageflow", {"data": {"smsId": "mf-1"}}),
    ("messageflow", {"data": ["mf-1"]}),
    ("messageflow", {"data": [{"smsId": True}], "errors": []}),
    ("messageflow", {"data": [{"smsId": "mf-1"}], "errors": "none"}),
    ("gateway", {"success": True, "data": {"msg_id": 5}}),
    ("gateway", {"success": True, "data": [{"data": {"msg_id": 5}}]}),
    ("gateway", {"success": True, "data": [{"success": True, "data": [5]}]}),
    ("gateway", {"data": [{"success": True, "data": {"msg_id": 5}}]}),
]


def answering(response: httpx.Response) -> httpx.Client:
    def handler(request: httpx.Request) -> httpx.Response:
        return response

    return httpx.Client(transport=httpx.MockTransport(handler))


def send(adapter: str, response: httpx.Response, sms: Step = SMS) -> str:
    build, _ = ADAPTERS[adapter]
    provider: Provider = build(answering(response))
    return provider.send(sms, CALLBACK)


def assert_ambiguous(adapter: str, response: httpx.Response) -> AmbiguousSend:
    with pytest.raises(AmbiguousSend) as caught:
        send(adapter, response)
    # ambiguous is never a permanent error: the step must not fail over to another provider
    assert not isinstance(caught.value, PermanentProviderError)
    assert caught.value.provider == adapter
    assert PHONE not in str(caught.value) and "4821" not in str(caught.value)
    return caught.value


UNREADABLE = {
    "html": httpx.Response(
        200,
        text="<html><body>Request queued</body></html>",
        headers={"content-type": "text/html; charset=utf-8"},
    ),
    "json-body-as-text-plain": httpx.Response(
        200, text='{"success": true}', headers={"content-type": "text/plain"}
    ),
    "invalid-json": httpx.Response(
        200,
        content=b'{"success": true, "request_id": ',
        headers={"content-type": "application/json"},
    ),
    "not-utf8": httpx.Response(
        200, content=b'{"a": "\xff\xfe"}', headers={"content-type": "application/json"}
    ),
    "json-list": httpx.Response(200, json=[{"success": True}]),
    "empty": httpx.Response(200, content=b"", headers={"content-type": "application/json"}),
    "no-content-type": httpx.Response(200, content=b'{"success": true}'),
}


@pytest.mark.parametrize("adapter", ADAPTERS)
@pytest.mark.parametrize("reply", UNREADABLE)
def test_unreadable_2xx_is_ambiguous(adapter: str, reply: str) -> None:
    assert_ambiguous(adapter, UNREADABLE[reply])


@pytest.mark.parametrize("adapter", ADAPTERS)
@pytest.mark.parametrize("status", [200, 201, 202])
def test_accepted_without_a_message_id_is_ambiguous(adapter: str, status: int) -> None:
    assert_ambiguous(adapter, httpx.Response(status, json=ADAPTERS[adapter][1]))


@pytest.mark.parametrize(("adapter", "reply"), ODD_SHAPES)
def test_unexpected_shape_is_ambiguous(adapter: str, reply: dict[str, Any]) -> None:
    assert_ambiguous(adapter, httpx.Response(200, json=reply))


@pytest.mark.parametrize("adapter", ADAPTERS)
@pytest.mark.parametrize("status", [400, 404, 422])
def test_a_4xx_stays_a_permanent_refusal(adapter: str, status: int) -> None:
    html = httpx.Response(status, text="<html>nope</html>", headers={"content-type": "text/html"})
    with pytest.raises(ProviderRejected) as caught:
        send(adapter, html)
    assert not isinstance(caught.value, AmbiguousSend)


def test_json_with_a_charset_or_a_json_suffix_is_read() -> None:
    body = b'{"success": true, "request_id": "r-1"}'
    for content_type in ("application/json; charset=utf-8", "application/vnd.zix+json"):
        response = httpx.Response(200, content=body, headers={"content-type": content_type})
        assert send("zixflow", response) == "r-1"
