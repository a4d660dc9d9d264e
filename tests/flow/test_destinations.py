"""The destination rule (flow.destinations) and its use at intake: an obviously private
``webhookurl`` or ``post_back_url`` is a 400 naming the field, unless private ones are allowed."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest

from otpflow.flow.destinations import is_forbidden, obviously_private
from otpflow.flow.models import FlowRequest, InvalidRequest

FORBIDDEN = [
    "127.0.0.1",
    "0.0.0.0",
    "10.0.0.1",
    "172.16.5.4",
    "192.168.1.1",
    "169.254.169.254",
    "100.64.0.1",
    "224.0.0.1",
    "::1",
    "fe80::1",
    "fc00::1",
    "::ffff:169.254.169.254",
    "::ffff:10.0.0.1",
    "64:ff9b::7f00:1",  # NAT64 of 127.0.0.1
    "64:ff9b::808:808",  # NAT64 of a public address: still through a translator
    "64:ff9b:1::a9fe:a9fe",
    "2002:7f00:1::1",  # 6to4 of 127.0.0.1
    "2002:808:808::1",
]
ALLOWED = ["8.8.8.8", "93.184.215.14", "2606:4700:4700::1111", "::ffff:8.8.8.8"]


@pytest.mark.parametrize("address", FORBIDDEN)
def test_private_and_translated_addresses_are_forbidden(address: str) -> None:
    assert is_forbidden(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", ALLOWED)
def test_public_addresses_are_allowed(address: str) -> None:
    assert not is_forbidden(ipaddress.ip_address(address))


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data",
        "http://[::ffff:169.254.169.254]/",
        "http://[::1]:8000/hook",
        "https://10.0.0.5/dlr",
    ],
)
def test_obviously_private_urls(url: str) -> None:
    assert obviously_private(url)


@pytest.mark.parametrize(
    "url", ["https://app.example/hook", "http://8.8.8.8/hook", "http://localhost:8000/hook"]
)
def test_names_and_public_literals_are_left_to_delivery(url: str) -> None:
    assert not obviously_private(url)


def request(webhook: str | None = None, post_back: str | None = None) -> dict[str, Any]:
    data: dict[str, Any] = {
        "recipient": "919876543210",
        "message": "m",
        "sender_id": "ACME",
        "route": "otp",
    }
    if post_back is not None:
        data["post_back_url"] = post_back
    body: dict[str, Any] = {
        "messages": [
            {"channel": "sms", "timeout": 5, "data": data},
            {
                "channel": "email",
                "timeout": 0,
                "data": {
                    "to": "a@example.com",
                    "from": "b@example.com",
                    "subject": "s",
                    "text": "t",
                    "post_back_url": post_back or "https://app.example/mail",
                },
            },
        ]
    }
    if webhook is not None:
        body["webhookurl"] = webhook
    return body


@pytest.mark.parametrize(
    ("raw", "paths"),
    [
        (request(webhook="http://169.254.169.254/latest"), ["webhookurl"]),
        (request(webhook="http://[::ffff:169.254.169.254]/"), ["webhookurl"]),
        (request(webhook="http://127.0.0.1:9000/hook"), ["webhookurl"]),
        # 169.254.169.254 as one number: URL parsing spells it out before the check
        (request(webhook="http://2852039166/latest"), ["webhookurl"]),
        (
            request(post_back="http://192.168.0.10/dlr"),
            ["messages.0.data.post_back_url", "messages.1.data.post_back_url"],
        ),
    ],
)
def test_intake_refuses_obviously_private_destinations_naming_the_field(
    raw: dict[str, Any], paths: list[str]
) -> None:
    with pytest.raises(InvalidRequest) as caught:
        FlowRequest.parse(raw, allow_private_destinations=False)
    assert sorted(error.path for error in caught.value.errors) == paths
    assert all("private" in error.message for error in caught.value.errors)


def test_intake_allows_them_when_private_destinations_are_allowed() -> None:
    raw = request(webhook="http://127.0.0.1:9000/hook", post_back="http://10.0.0.1/dlr")
    parsed = FlowRequest.parse(raw, allow_private_destinations=True)
    assert parsed.webhook_url == "http://127.0.0.1:9000/hook"


def test_public_destinations_pass_intake() -> None:
    raw = request(webhook="https://app.example/hook", post_back="https://app.example/dlr")
    assert FlowRequest.parse(raw, allow_private_destinations=False).webhook_url


def test_a_stored_request_reads_back_whatever_it_was_allowed() -> None:
    # the store parses what it kept without the intake's setting: no refusal there
    stored = FlowRequest.parse(
        request(webhook="http://127.0.0.1:9000/hook"), allow_private_destinations=True
    )
    assert FlowRequest.parse(stored.to_json_dict()) == stored


def test_the_producer_refuses_them_before_anything_is_stored(redis_client: Any) -> None:
    from otpflow.config.settings import Settings
    from otpflow.producers.client import OtpflowClient
    from otpflow.producers.errors import error_reply

    url = redis_client.connection_pool.connection_kwargs
    settings = Settings(
        redis_url=f"redis://{url['host']}:{url['port']}/{url['db']}",
        broker_url="memory://",
        allow_private_webhooks=False,
    )
    client = OtpflowClient(settings)
    try:
        with pytest.raises(InvalidRequest) as caught:
            client.send(request(webhook="http://[::ffff:169.254.169.254]/latest"))
    finally:
        client.close()
    body, status, _ = error_reply(caught.value)
    assert status == 400
    assert [error["field"] for error in body["errors"]] == ["webhookurl"]
    assert redis_client.dbsize() == 0, "nothing stored"
