"""ASGI app of the provider simulator: Zixflow SMS/WhatsApp endpoints, DLR postbacks, /_sim."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import httpx
from pydantic import BaseModel, ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from .outcomes import Rule, RuleBook, parse_rules
from .schemas import (
    CampaignSend,
    SmsSend,
    WhatsAppButtons,
    WhatsAppTemplate,
    WhatsAppText,
    first_error,
)

Style = Literal["ingest", "campaign"]
REMARKS = {"delivered": "Message delivered", "failed": "Message delivery failed"}
POSTBACK_RETRY_SECONDS = 1.0  # first retry of a failed postback; doubles each time


@dataclass(frozen=True)
class Endpoint:
    """One simulated provider endpoint."""

    path: str
    model: type[BaseModel]
    channel: str
    recipient_field: str
    ok_message: str
    style: Style = "ingest"


ENDPOINTS = (
    Endpoint(
        "/api/ingest/sms/v1/message/send",
        SmsSend,
        "sms",
        "recipient",
        "SMS request queued successfully",
    ),
    Endpoint(
        "/api/ingest/whatsapp/v1/template/send",
        WhatsAppTemplate,
        "whatsapp",
        "recipient",
        "WhatsApp request queued successfully",
    ),
    Endpoint(
        "/api/ingest/whatsapp/v1/message/interactive/reply-buttons/send",
        WhatsAppButtons,
        "whatsapp",
        "recipient",
        "WhatsApp request queued successfully",
    ),
    Endpoint(
        "/api/ingest/whatsapp/v1/message/text/send",
        WhatsAppText,
        "whatsapp",
        "recipient",
        "WhatsApp request queued successfully",
    ),
    Endpoint(
        "/api/v1/campaign/whatsapp/message/send",
        CampaignSend,
        "whatsapp",
        "to",
        "success",
        style="campaign",
    ),
)


@dataclass(frozen=True)
class Message:
    """An accepted message, kept so /_sim/dlr can post for it later."""

    request_id: str
    message_id: str
    channel: str
    recipient: str
    post_back_url: str | None
    post_back_data: str | None


class SimState:
    """Mutable simulator state: rules, request log, postback log, pending postbacks."""

    def __init__(
        self,
        api_key: str,
        workspace_id: str,
        default_delay_ms: int,
        rules: list[Rule],
        postback_attempts: int = 4,
    ) -> None:
        self.api_key = api_key
        self.postback_attempts = postback_attempts
        self.workspace_id = workspace_id
        self.default_delay_ms = default_delay_ms
        self.rules = RuleBook(rules)
        self.requests: list[dict[str, Any]] = []
        self.postbacks: list[dict[str, Any]] = []
        self.messages: dict[str, Message] = {}
        self.tasks: set[asyncio.Task[None]] = set()
        self.client: httpx.AsyncClient | None = None
        self._seq = itertools.count(1)

    def reset(self) -> None:
        """Forget requests, postbacks, messages and rules; cancel pending postbacks."""
        for task in self.tasks:
            task.cancel()
        self.tasks.clear()
        self.requests.clear()
        self.postbacks.clear()
        self.messages.clear()
        self.rules = RuleBook()

    def log_request(self, **entry: Any) -> None:
        """Append one entry to the request log."""
        self.requests.append({"seq": next(self._seq), **entry})

    def schedule(self, msg: Message, status: str, delay_ms: int) -> None:
        """Post a delivery postback for ``msg`` after ``delay_ms``, without blocking."""
        if not msg.post_back_url:
            return
        task = asyncio.create_task(self._post_later(msg, msg.post_back_url, status, delay_ms))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _post_later(self, msg: Message, url: str, status: str, delay_ms: int) -> None:
        await asyncio.sleep(delay_ms / 1000)
        body = {
            "workspace_id": self.workspace_id,
            "type": "delivery_status",
            "message_id": msg.message_id,
            "request_id": msg.request_id,
            "channel": msg.channel,
            "recipient": msg.recipient,
            "status": status,
            "remark": REMARKS.get(status, f"Message {status}"),
            "status_at": _utc_now(),
            "post_back_data": msg.post_back_data,
        }
        # like real providers: a postback that meets an error or a 5xx is tried again later
        for attempt in range(1, self.postback_attempts + 1):
            record: dict[str, Any] = {
                "sent_at": time.time(),
                "url": url,
                "body": body,
                "attempt": attempt,
                "response_status": None,
                "error": None,
            }
            try:
                if self.client is None:
                    raise RuntimeError("HTTP client not started (app lifespan not running)")
                resp = await self.client.post(url, json=body)
                record["response_status"] = resp.status_code
            except Exception as exc:  # recorded; retried below
                record["error"] = f"{type(exc).__name__}: {exc}"
            self.postbacks.append(record)
            if record["error"] is None and record["response_status"] < 500:
                return
            await asyncio.sleep(POSTBACK_RETRY_SECONDS * 2 ** (attempt - 1))


def _utc_now() -> str:
    """Current time as ISO 8601 UTC with a ``Z`` suffix."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _state(request: Request) -> SimState:
    state: SimState = request.app.state.sim
    return state


def _reply(ep: Endpoint, code: int, message: str, request_id: str | None = None) -> JSONResponse:
    if ep.style == "campaign":
        return JSONResponse({"status": code == 200, "message": message}, status_code=code)
    body: dict[str, Any] = {"success": code == 200, "message": message}
    if request_id is not None:
        body["request_id"] = request_id
    return JSONResponse(body, status_code=code)


def _authorized(state: SimState, request: Request) -> bool:
    headers = request.headers
    if (
        headers.get("x-api-key") == state.api_key
        and headers.get("x-workspace-id") == state.workspace_id
    ):
        return True
    # The campaign API of seed 004 documents no headers; also accept a bearer API key.
    return headers.get("authorization") == f"Bearer {state.api_key}"


def _send_handler(ep: Endpoint) -> Callable[[Request], Awaitable[JSONResponse]]:
    async def handle(request: Request) -> JSONResponse:
        state = _state(request)
        received_at = time.time()
        try:
            body: Any = json.loads(await request.body())
        except ValueError:
            body = None
        recipient = body.get(ep.recipient_field) if isinstance(body, dict) else None
        request_id: str | None = None

        def done(resp: JSONResponse) -> JSONResponse:
            state.log_request(
                received_at=received_at,
                path=ep.path,
                channel=ep.channel,
                recipient=recipient if isinstance(recipient, str) else None,
                headers=dict(request.headers),
                body=body,
                status_code=resp.status_code,
                request_id=request_id,
            )
            return resp

        if not _authorized(state, request):
            return done(_reply(ep, 401, "Invalid API key or workspace id"))
        if not isinstance(body, dict):
            return done(_reply(ep, 400, "Request body must be a JSON object"))
        try:
            payload = ep.model.model_validate(body)
        except ValidationError as exc:
            return done(_reply(ep, 400, first_error(exc)))

        rule = state.rules.pick(ep.channel, recipient)
        if rule.accept_delay_ms:
            await asyncio.sleep(rule.accept_delay_ms / 1000)
        if rule.action == "reject":
            return done(_reply(ep, 400, "Recipient is blocked"))
        if rule.action == "error":
            return done(_reply(ep, 500, "Internal server error"))

        request_id = str(uuid.uuid4())
        msg = Message(
            request_id=request_id,
            message_id=str(uuid.uuid4()),
            channel=ep.channel,
            recipient=str(recipient),
            post_back_url=getattr(payload, "post_back_url", None),
            post_back_data=getattr(payload, "post_back_data", None),
        )
        state.messages[request_id] = msg
        status = rule.postback_status()
        if status is not None:
            delay = rule.delay_ms if rule.delay_ms is not None else state.default_delay_ms
            state.schedule(msg, status, delay)
        return done(_reply(ep, 200, ep.ok_message, request_id))

    return handle


async def _get_requests(request: Request) -> JSONResponse:
    """Request log, optionally filtered by ``channel`` and ``recipient``."""
    q = request.query_params
    rows = [
        r
        for r in _state(request).requests
        if ("channel" not in q or r["channel"] == q["channel"])
        and ("recipient" not in q or r["recipient"] == q["recipient"])
    ]
    return JSONResponse({"requests": rows})


async def _get_postbacks(request: Request) -> JSONResponse:
    """Postback log, optionally filtered by ``request_id``."""
    rid = request.query_params.get("request_id")
    rows = [p for p in _state(request).postbacks if rid is None or p["body"]["request_id"] == rid]
    return JSONResponse({"postbacks": rows})


async def _json_object(request: Request) -> dict[str, Any] | None:
    try:
        data = json.loads(await request.body() or b"{}")
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def _bad(message: str, code: int = 400) -> JSONResponse:
    return JSONResponse({"ok": False, "error": message}, status_code=code)


async def _rules(request: Request) -> JSONResponse:
    """GET: current rules. POST ``{"rules": [...]}``: replace all rules."""
    state = _state(request)
    if request.method == "POST":
        data = await _json_object(request)
        if data is None or not isinstance(data.get("rules"), list):
            return _bad('body must be {"rules": [...]}')
        try:
            state.rules = RuleBook(parse_rules(data["rules"]))
        except ValidationError as exc:
            return _bad(first_error(exc))
    return JSONResponse({"ok": True, "rules": [r.model_dump() for r in state.rules.rules]})


async def _reset(request: Request) -> JSONResponse:
    """Clear requests, postbacks, messages and rules; cancel pending postbacks."""
    _state(request).reset()
    return JSONResponse({"ok": True})


async def _dlr(request: Request) -> JSONResponse:
    """Post (again) a postback for an accepted message: duplicate or late DLRs on demand."""
    state = _state(request)
    data = await _json_object(request)
    if data is None:
        return _bad("body must be a JSON object")
    msg = state.messages.get(str(data.get("request_id")))
    if msg is None:
        return _bad("unknown request_id", 404)
    if not msg.post_back_url:
        return _bad("message has no post_back_url", 409)
    status, delay_ms = data.get("status", "delivered"), data.get("delay_ms", 0)
    if not isinstance(status, str) or not status:
        return _bad("status must be a non-empty string")
    if isinstance(delay_ms, bool) or not isinstance(delay_ms, int) or delay_ms < 0:
        return _bad("delay_ms must be a non-negative integer")
    state.schedule(msg, status, delay_ms)
    return JSONResponse({"ok": True, "request_id": msg.request_id, "status": status})


async def _healthz(request: Request) -> JSONResponse:
    return JSONResponse({"ok": True})


def create_app(
    api_key: str = "sim-key",
    workspace_id: str = "sim-workspace",
    default_delay_ms: int = 200,
    rules: Iterable[dict[str, Any]] | None = None,
    postback_attempts: int = 4,
) -> Starlette:
    """Build the simulator app; ``rules`` are outcome rule dicts (see ``outcomes.Rule``).

    A postback answered with a 5xx or not at all is tried again after 1, 2, 4, ... seconds,
    ``postback_attempts`` times in all, as providers do.
    """
    state = SimState(
        api_key, workspace_id, default_delay_ms, parse_rules(rules or []), postback_attempts
    )

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        state.client = httpx.AsyncClient(timeout=5.0)
        try:
            yield
        finally:
            for task in list(state.tasks):
                task.cancel()
            await state.client.aclose()
            state.client = None

    routes = [Route(ep.path, _send_handler(ep), methods=["POST"]) for ep in ENDPOINTS]
    routes += [
        Route("/_sim/requests", _get_requests, methods=["GET"]),
        Route("/_sim/postbacks", _get_postbacks, methods=["GET"]),
        Route("/_sim/rules", _rules, methods=["GET", "POST"]),
        Route("/_sim/reset", _reset, methods=["POST"]),
        Route("/_sim/dlr", _dlr, methods=["POST"]),
        Route("/healthz", _healthz, methods=["GET"]),
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.sim = state
    return app
