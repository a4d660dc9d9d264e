"""The API's error replies, in process (Starlette's test client is the real app)."""

from __future__ import annotations

import asyncio
import gc
import json
import uuid
from typing import Any
from urllib.parse import quote

import pytest
import redis
from fastapi.testclient import TestClient
from kombu.exceptions import OperationalError

from otpflow.api.app import create_app
from otpflow.cli.stack import free_port
from otpflow.config.settings import Settings
from otpflow.flow.signing import dlr_token
from otpflow.producers import OtpflowClient

from harness import sms_step

HEADERS = {"x-api-key": "demo-key", "x-workspace-id": "demo"}
FLOW: dict[str, Any] = {
    "messages": [sms_step("919876543210", text="Code 1")],
    "webhookurl": "https://app.example/otp",
    "webhookEvents": ["terminal"],
}


@pytest.fixture
def otp(redis_client: redis.Redis) -> OtpflowClient:
    settings = Settings(broker_url="memory://", api_keys="demo:demo-key")
    return OtpflowClient(settings, redis_client=redis_client)


def api(otp: OtpflowClient) -> TestClient:
    return TestClient(create_app(otp.settings, otp), raise_server_exceptions=False)


@pytest.mark.parametrize("action", ["cancel", "verify"])
def test_redis_failing_after_the_ownership_check_is_a_503(
    otp: OtpflowClient, action: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    flow_id = otp.send(FLOW, workspace="demo")

    def down(*_: Any) -> None:
        raise redis.ConnectionError("connection refused")

    monkeypatch.setattr(otp.store, action, down)
    body = {"code": "123456"} if action == "verify" else None
    reply = api(otp).post(f"/v1/otpflow/{flow_id}/{action}", headers=HEADERS, json=body)
    assert reply.status_code == 503
    assert reply.json() == {"success": False, "message": "flow store (Redis) is unreachable"}


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/fraud/blocks"),
        ("DELETE", "/v1/fraud/blocks/country-NG"),
        ("GET", "/v1/routing/stats"),
        ("GET", "/metrics"),
        ("POST", "/v1/dlr/zixflow"),
        ("GET", f"/v1/otpflow/{uuid.uuid4()}"),
    ],
)
def test_redis_down_under_any_route_is_the_one_503(method: str, path: str) -> None:
    down = redis.Redis(port=free_port(), socket_connect_timeout=0.2)
    secret = "s" * 32
    settings = Settings(broker_url="memory://", api_keys="demo:demo-key", secret=secret)
    token = dlr_token(secret, "zixflow", str(uuid.uuid4()), 0)
    body = REPORT if method == "POST" else None
    reply = api(OtpflowClient(settings, redis_client=down)).request(
        method, path, headers=HEADERS, params={"token": token}, json=body
    )
    assert reply.status_code == 503, reply.text
    assert reply.json() == {"success": False, "message": "flow store (Redis) is unreachable"}


def test_a_cancel_that_took_effect_is_answered_even_if_its_webhook_cannot_be_enqueued(
    otp: OtpflowClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    flow_id = otp.send(FLOW, workspace="demo")

    def broker_down(*_: Any, **__: Any) -> None:
        raise OperationalError("broker unreachable")

    monkeypatch.setattr(otp.celery, "send_task", broker_down)
    reply = api(otp).post(f"/v1/otpflow/{flow_id}/cancel", headers=HEADERS)
    assert reply.status_code == 200
    assert reply.json()["status"] == "cancelled"
    view = otp.status(flow_id)
    assert view is not None and view.status == "cancelled"


def test_a_send_refused_for_redis_says_nothing_was_stored(
    otp: OtpflowClient, redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    def down(*_: Any, **__: Any) -> None:
        raise redis.ConnectionError("connection refused")

    monkeypatch.setattr(otp.store, "submit", down)
    reply = api(otp).post("/v1/otpflow", headers=HEADERS, json=FLOW)
    assert reply.status_code == 503
    assert reply.json()["message"].endswith("nothing was stored, try again")
    assert redis_client.keys("otpflow:flow:*") == []


def test_with_the_development_defaults_a_flow_sent_from_python_is_read_back_over_http(
    redis_client: redis.Redis, clean_env: None
) -> None:
    # `otpflow send` and the Django/Flask helpers send to the default workspace
    otp = OtpflowClient(Settings(broker_url="memory://"), redis_client=redis_client)
    flow_id = otp.send(FLOW)
    headers = {"x-api-key": "demo-key", "x-workspace-id": "default"}
    reply = api(otp).get(f"/v1/otpflow/{flow_id}", headers=headers)
    assert reply.status_code == 200, reply.text
    assert reply.json()["request_id"] == flow_id


# -- what a caller sends: size, type, nesting, ids, tokens ---------------------------------------

ROUTES = ["/v1/otpflow", f"/v1/otpflow/{uuid.uuid4()}/verify", "/v1/dlr/zixflow"]
REPORT = {"status": "delivered", "request_id": "x", "channel": "sms"}


def drive(
    app: Any, path: str, chunks: list[bytes], headers: dict[str, str]
) -> tuple[int, dict[str, Any], int]:
    """POST a body to the ASGI app in chunks, as a server hands them over; returns the
    status, the JSON reply and how many chunks the app asked for."""
    read = 0
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        nonlocal read
        read += 1
        if read > len(chunks):
            return {"type": "http.disconnect"}
        return {"type": "http.request", "body": chunks[read - 1], "more_body": read < len(chunks)}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    raw_headers = [(k.lower().encode(), v.encode()) for k, v in (HEADERS | headers).items()]
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": raw_headers,
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 8000),
    }
    asyncio.run(app(scope, receive, send))
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return status, json.loads(body), read


@pytest.mark.parametrize("path", ROUTES)
def test_a_body_declared_larger_than_the_limit_is_refused_unread(
    otp: OtpflowClient, path: str
) -> None:
    app = create_app(otp.settings, otp)
    json_type = {"content-type": "application/json"}
    sixty_mb = json_type | {"content-length": str(60 * 1024 * 1024)}
    status, reply, read = drive(app, path, [b"{}"], sixty_mb)
    assert (status, read) == (413, 0), "refused before a byte of the body is read"
    assert reply["max_bytes"] == 65536 and "65536 bytes" in reply["message"]


@pytest.mark.parametrize("path", ROUTES)
def test_a_chunked_body_is_read_no_further_than_the_limit(otp: OtpflowClient, path: str) -> None:
    app = create_app(otp.settings, otp)
    chunks = [b" " * 32 * 1024] * 200  # 6.4 MB, no Content-Length
    status, reply, read = drive(app, path, chunks, {"content-type": "application/json"})
    assert status == 413 and "65536 bytes" in reply["message"]
    assert read <= 3, f"the app read {read} chunks of 32 KB"


@pytest.mark.parametrize("path", ROUTES)
@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", None])
def test_a_body_that_is_not_json_is_a_415(
    otp: OtpflowClient, path: str, content_type: str | None
) -> None:
    headers = HEADERS | ({"content-type": content_type} if content_type else {})
    body = json.dumps(FLOW if path == "/v1/otpflow" else REPORT).encode()
    reply = api(otp).post(path, headers=headers, content=body)
    assert reply.status_code == 415, reply.text
    assert reply.json()["errors"] == [
        {"field": "content-type", "message": "must be application/json"}
    ]


def test_json_with_a_charset_is_json(otp: OtpflowClient) -> None:
    headers = HEADERS | {"content-type": "application/json; charset=utf-8"}
    reply = api(otp).post("/v1/otpflow", headers=headers, content=json.dumps(FLOW).encode())
    assert reply.status_code == 200, reply.text


@pytest.mark.parametrize("path", ROUTES)
@pytest.mark.parametrize("depth", [100, 30_000])
def test_deeply_nested_json_is_a_400(otp: OtpflowClient, path: str, depth: int) -> None:
    body = b"[" * depth + b"]" * depth  # 30,000 levels pass the decoder's recursion limit
    headers = HEADERS | {"content-type": "application/json"}
    reply = api(otp).post(path, headers=headers, content=body)
    assert reply.status_code == 400, reply.text
    assert reply.json()["errors"] == [{"field": "body", "message": "nested deeper than 64 levels"}]


@pytest.mark.parametrize(
    ("method", "action", "body"),
    [("GET", "", None), ("POST", "/cancel", None), ("POST", "/verify", {"code": "123456"})],
)
@pytest.mark.parametrize(
    "request_id",
    ["probe:request", "x", pytest.param("1" * 5000, id="5000 digits"), "not a uuid"],
)
def test_a_request_id_that_is_not_a_uuid_is_a_400_without_touching_redis(
    method: str, action: str, body: dict[str, str] | None, request_id: str
) -> None:
    # Redis on a port nothing listens on: any lookup would answer 503
    down = redis.Redis(port=free_port(), socket_connect_timeout=0.2)
    settings = Settings(broker_url="memory://", api_keys="demo:demo-key")
    client = OtpflowClient(settings, redis_client=down)
    path = f"/v1/otpflow/{quote(request_id, safe='')}{action}"
    reply = api(client).request(method, path, headers=HEADERS, json=body)
    assert reply.status_code == 400, reply.text
    assert reply.json()["errors"] == [
        {"field": "request_id", "message": "must be a UUID, as POST /v1/otpflow answered"}
    ]


def test_a_request_id_in_capitals_is_the_same_flow(otp: OtpflowClient) -> None:
    flow_id = otp.send(FLOW, workspace="demo")
    reply = api(otp).get(f"/v1/otpflow/{flow_id.upper()}", headers=HEADERS)
    assert reply.status_code == 200 and reply.json()["request_id"] == flow_id


@pytest.mark.parametrize(
    "step",
    [pytest.param("9" * 5000, id="5000 digits"), pytest.param("\u00b2", id="superscript two")],
)
def test_a_token_whose_step_is_no_number_we_use_is_a_401(otp: OtpflowClient, step: str) -> None:
    flow_id = otp.send(FLOW, workspace="demo")
    token = f"{flow_id}.{step}.{'0' * 40}"
    reply = api(otp).post("/v1/dlr/zixflow", params={"token": token}, json=REPORT)
    assert reply.status_code == 401, reply.text
    assert reply.json() == {"success": False, "message": "invalid callback token"}


def test_a_callback_minted_before_a_secret_rotation_is_still_accepted(
    redis_client: redis.Redis,
) -> None:
    old, new = "o" * 32, "n" * 32
    settings = Settings(
        broker_url="memory://", api_keys="demo:demo-key", secret=new, previous_secrets=old
    )
    otp = OtpflowClient(settings, redis_client=redis_client)
    flow_id = otp.send(FLOW, workspace="demo")
    assert otp.store.claim(flow_id, 0, 1, 30).kind == "claimed"
    otp.store.accepted(flow_id, 0, "zixflow", "m0", 30)
    before_rotation = dlr_token(old, "zixflow", flow_id, 0)
    reply = api(otp).post("/v1/dlr/zixflow", params={"token": before_rotation}, json=REPORT)
    assert reply.status_code == 200, reply.text
    view = otp.status(flow_id)
    assert view is not None and view.status == "delivered"
    forged = dlr_token("f" * 32, "zixflow", flow_id, 0)
    assert (
        api(otp).post("/v1/dlr/zixflow", params={"token": forged}, json=REPORT).status_code == 401
    )


def test_a_recipient_past_its_wrong_code_budget_is_told_when_to_try_again(
    redis_client: redis.Redis,
) -> None:
    settings = Settings(
        broker_url="memory://", api_keys="demo:demo-key", limits={"verify_failures": 1}
    )
    otp = OtpflowClient(settings, redis_client=redis_client)
    sms = FLOW["messages"][0] | {"data": FLOW["messages"][0]["data"] | {"message": "{{code}}"}}
    flow_id = otp.send({"messages": [sms], "otp": {"max_attempts": 5}}, workspace="demo")
    wrong = "0000"  # four digits: never the six-digit code
    path = f"/v1/otpflow/{flow_id}/verify"
    assert api(otp).post(path, headers=HEADERS, json={"code": wrong}).status_code == 400
    reply = api(otp).post(path, headers=HEADERS, json={"code": wrong})
    assert reply.status_code == 429, reply.text
    assert 0 < int(reply.headers["retry-after"]) <= 3600


def test_the_api_freezes_its_heap_once_started(otp: OtpflowClient) -> None:
    gc.unfreeze()
    try:
        with TestClient(create_app(otp.settings, otp)):  # runs the lifespan
            assert gc.get_freeze_count() > 10_000
    finally:
        gc.unfreeze()
