"""The HTTP API (FastAPI): submit flows, read them, take delivery reports.

``POST /v1/otpflow`` calls the same client function a Django or Flask app calls. Bad requests
get a 400 naming every bad field by its path; nothing is stored or enqueued for them.
"""

from __future__ import annotations

import hmac
import json
import logging
import time
import uuid
import warnings
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

import httpx
import redis
from fastapi import Depends, FastAPI, Header, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from otpflow.api.dlr import BadToken, DlrIntake, InvalidDlr, UnknownProvider
from otpflow.api.metrics import CONTENT_TYPE, render
from otpflow.config.process import freeze_heap
from otpflow.config.settings import InsecureDefaultWarning, Settings, load_settings
from otpflow.flow.logs import configure_logging
from otpflow.flow.metrics import Metrics
from otpflow.flow.models import FlowEnvelope, InvalidRequest
from otpflow.flow.states import Kind
from otpflow.flow.store import FlowView
from otpflow.flow.times import iso
from otpflow.producers.client import (
    Conflict,
    OtpflowClient,
    RateLimited,
    ServiceUnavailable,
    error_reply,
    verify_reply,
)
from otpflow.providers import build_providers

logger = logging.getLogger("otpflow.api")

MAX_BODY_BYTES = 64 * 1024
# Real bodies nest a handful of levels (a WhatsApp interactive body about eight); a limit far
# below the interpreter's recursion limit keeps every later recursive walk (validation,
# redaction, json.dumps) safe too.
MAX_JSON_DEPTH = 64


class BodyTooLarge(Exception):
    """The request body grew past the limit while it was being read."""


class LimitBodySize:
    """ASGI middleware, in front of every route: a body larger than ``max_bytes`` is answered
    413 unread when its Content-Length says so, and as soon as it grows past the limit when
    it comes in chunks, so no request can make the API hold more than the limit in memory.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.max_bytes:
            await self.too_large(scope, receive, send)
            return
        received = 0
        started = False

        async def capped_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise BodyTooLarge
            return message

        async def watched_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, capped_receive, watched_send)
        except BodyTooLarge:
            if started:
                raise
            await self.too_large(scope, receive, send)

    async def too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = {
            "success": False,
            "message": f"request body larger than the limit of {self.max_bytes} bytes",
            "max_bytes": self.max_bytes,
        }
        # closing the connection stops the client's upload too, rather than the server
        # reading (and dropping) the rest of it for the connection's next request
        response = JSONResponse(body, status_code=413, headers={"connection": "close"})
        await response(scope, receive, send)


def is_json(content_type: str | None) -> bool:
    """``application/json`` or a ``+json`` type, with any parameters (charset)."""
    media_type = (content_type or "").split(";", 1)[0].strip().lower()
    return media_type == "application/json" or (
        media_type.startswith("application/") and media_type.endswith("+json")
    )


def nested_too_deep(value: Any, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether decoded JSON nests deeper than ``limit`` (walked without recursion)."""
    pending: list[tuple[Any, int]] = [(value, 1)]
    while pending:
        node, depth = pending.pop()
        if isinstance(node, dict):
            node = list(node.values())
        if isinstance(node, list):
            if depth > limit:
                return True
            pending.extend((child, depth + 1) for child in node)
    return False


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        message: str,
        errors: list[dict[str, str]] | None = None,
        retry_after: int | None = None,
        **extra: Any,
    ):
        self.status = status
        self.message = message
        self.errors = errors
        self.retry_after = retry_after
        self.extra = extra


class ErrorBody(BaseModel):
    success: bool = False
    message: str
    errors: list[dict[str, str]] | None = Field(
        default=None, description="every bad field by its dotted path"
    )
    attempts_left: int | None = None


class Accepted(BaseModel):
    success: bool = True
    message: str
    request_id: str | None = None
    status: str | None = None

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "success": True,
                    "message": "flow accepted",
                    "request_id": "3d2764c5-24a1-4eb5-a859-44b7c32eb41e",
                }
            ]
        }
    )


class StepOut(BaseModel):
    index: int
    channel: str
    messageType: str
    timeout: int
    status: str
    provider: str | None
    provider_message_id: str | None
    attempts: int
    claimed_at: str | None
    sent_at: str | None
    deadline: str | None
    ended_at: str | None
    dlr: str | None
    dlr_at: str | None
    reason: str | None


class FlowOut(BaseModel):
    request_id: str
    status: str = Field(description="queued, in_progress, delivered, failed, cancelled, verified")
    current_step: int
    delivered_step: int | None
    reason: str | None
    created_at: str | None
    updated_at: str | None
    ended_at: str | None
    steps: list[StepOut]
    events: list[dict[str, Any]] = Field(description="the timeline, oldest first")


class Ready(BaseModel):
    ready: bool
    checks: dict[str, str]


REF = "#/components/schemas/{model}"


def body_schema(model: type[BaseModel]) -> dict[str, Any]:
    """A request body's schema for OpenAPI, its nested models referenced from components."""
    schema = model.model_json_schema(ref_template=REF)
    schema.pop("$defs", None)
    return schema


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for the error statuses an operation can answer."""
    return {status: {"model": ErrorBody} for status in statuses}


class VerifyBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: Annotated[str, StringConstraints(pattern=r"^[0-9]{4,10}$")]


def authenticated(
    request: Request,
    x_api_key: Annotated[str | None, Header()] = None,
    x_workspace_id: Annotated[str | None, Header()] = None,
) -> str:
    """The caller's workspace, if its key matches (compared in constant time); else 401."""
    keys_by_workspace: dict[str, str] = request.app.state.api_keys
    expected = keys_by_workspace.get(x_workspace_id or "")
    if (
        not x_api_key
        or not x_workspace_id
        or expected is None
        or not hmac.compare_digest(expected.encode(), x_api_key.encode())
    ):
        raise ApiError(401, "missing or wrong x-api-key / x-workspace-id")
    return x_workspace_id


Workspace = Annotated[str, Depends(authenticated)]


def valid_request_id(
    request_id: Annotated[str, Path(description="the request_id POST /v1/otpflow answered")],
) -> str:
    """The path's request id as flows are keyed (``str(uuid4())``); anything that is not a
    UUID names no flow and is refused here, never looked up."""
    try:
        return str(uuid.UUID(request_id))
    except ValueError as exc:
        raise ApiError(
            400,
            "invalid request",
            [{"field": "request_id", "message": "must be a UUID, as POST /v1/otpflow answered"}],
        ) from exc


RequestId = Annotated[str, Depends(valid_request_id)]


def create_app(settings: Settings, client: OtpflowClient | None = None) -> FastAPI:
    """The API for one process; the client (Redis, broker) is built here unless given."""
    otp = client or OtpflowClient(settings)
    http = httpx.Client(timeout=settings.provider_timeout_seconds)
    intake = DlrIntake(
        otp.store,
        build_providers(settings, http),
        settings.verification_secrets,
        otp.tasks,
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        freeze_heap()  # the app and its clients are built: keep full collections short
        yield
        http.close()
        otp.close()

    app = FastAPI(
        title="OTPflow",
        version="0.1.0",
        summary="Multi-channel OTP delivery with delivery-report driven fallback.",
        lifespan=lifespan,
    )
    app.state.api_keys = dict(settings.api_keys)
    app.add_middleware(LimitBodySize, max_bytes=MAX_BODY_BYTES)

    def openapi() -> dict[str, Any]:
        # parameter errors are answered with 400 (see below), never FastAPI's 422
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title, version=app.version, summary=app.summary, routes=app.routes
            )
            for path in schema["paths"].values():
                for operation in path.values():
                    operation.get("responses", {}).pop("422", None)
            # the request bodies' nested models, where their references point
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            for model in (FlowEnvelope, VerifyBody):
                components.update(model.model_json_schema(ref_template=REF).get("$defs", {}))
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]

    @app.exception_handler(RequestValidationError)
    async def _bad_parameters(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"field": ".".join(str(part) for part in error["loc"]), "message": error["msg"]}
            for error in exc.errors()
        ]
        return JSONResponse(
            {"success": False, "message": "invalid request", "errors": errors}, status_code=400
        )

    @app.exception_handler(InvalidRequest)
    @app.exception_handler(RateLimited)
    @app.exception_handler(Conflict)
    @app.exception_handler(ServiceUnavailable)
    async def _producer_error(_: Request, exc: Exception) -> JSONResponse:
        # the producers' own error replies, so every route (and Flask, Django) answers alike
        body, status, headers = error_reply(exc)
        return JSONResponse(body, status_code=status, headers=headers or None)

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        body: dict[str, Any] = {"success": False, "message": exc.message, **exc.extra}
        if exc.errors is not None:
            body["errors"] = exc.errors
        headers = {"Retry-After": str(exc.retry_after)} if exc.retry_after else None
        return JSONResponse(body, status_code=exc.status, headers=headers)

    async def json_body(request: Request) -> Any:
        """The decoded JSON body of every route that takes one: 415 for any other content
        type (before reading it), 400 for invalid JSON or JSON nested too deeply. Its size
        is capped by LimitBodySize."""
        if not is_json(request.headers.get("content-type")):
            raise ApiError(
                415,
                "the body must be JSON: send it with content-type: application/json",
                [{"field": "content-type", "message": "must be application/json"}],
            )
        raw = await request.body()
        try:
            body = json.loads(raw)
            too_deep = nested_too_deep(body)
        except RecursionError:
            too_deep = True  # nested past the decoder's own limit
        except ValueError as exc:
            raise ApiError(
                400, "body is not valid JSON", [{"field": "body", "message": "invalid JSON"}]
            ) from exc
        if too_deep:
            raise ApiError(
                400,
                "body is not valid JSON",
                [{"field": "body", "message": f"nested deeper than {MAX_JSON_DEPTH} levels"}],
            )
        return body

    @app.post(
        "/v1/otpflow",
        tags=["flows"],
        summary="Start a flow",
        response_model=Accepted,
        response_model_exclude_none=True,
        responses=errors(400, 401, 409, 413, 415, 429, 503),
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": body_schema(FlowEnvelope)}},
            }
        },
    )
    async def start_flow(
        request: Request,
        workspace: Workspace,
        idempotency_key: Annotated[str | None, Header(max_length=255)] = None,
    ) -> dict[str, Any]:
        await run_in_threadpool(limit_workspace, workspace)
        raw = await json_body(request)
        flow_id = await run_in_threadpool(otp.send, raw, workspace, idempotency_key)
        return {"success": True, "message": "flow accepted", "request_id": flow_id}

    def limit_workspace(workspace: str) -> None:
        """At most ``OTPFLOW_LIMITS__WORKSPACE_RPS`` new flows per second per workspace."""
        try:
            count = otp.store.count_request(workspace, int(time.time()))
        except redis.RedisError as exc:
            raise ApiError(503, "flow store (Redis) is unreachable; nothing was stored") from exc
        if count > settings.limits.workspace_rps:
            raise ApiError(429, "too many requests for this workspace", retry_after=1)

    def own_flow(request_id: str, workspace: str) -> FlowView:
        view = otp.status(request_id, workspace)
        if view is None:
            raise ApiError(404, "no such flow")
        return view

    @app.post(
        "/v1/otpflow/{request_id}/cancel",
        tags=["flows"],
        summary="Cancel a flow: no step is sent after this",
        response_model=Accepted,
        response_model_exclude_none=True,
        responses=errors(400, 401, 404, 409, 503),
    )
    async def cancel_flow(
        workspace: Workspace,
        request_id: RequestId,
    ) -> dict[str, Any]:
        await run_in_threadpool(own_flow, request_id, workspace)
        outcome = await run_in_threadpool(otp.cancel, request_id)
        if outcome.kind != Kind.CANCELLED:
            raise ApiError(409, f"the flow has already ended ({outcome.detail})")
        return {"success": True, "message": "flow cancelled", "status": "cancelled"}

    @app.post(
        "/v1/otpflow/{request_id}/verify",
        tags=["flows"],
        summary="Check the code the person typed",
        response_model=Accepted,
        response_model_exclude_none=True,
        responses=errors(400, 401, 404, 409, 410, 413, 415, 423, 429, 503),
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": body_schema(VerifyBody)}},
            }
        },
    )
    async def verify_code(
        request: Request,
        workspace: Workspace,
        request_id: RequestId,
    ) -> JSONResponse:
        try:
            body = VerifyBody.model_validate(await json_body(request))
        except ValidationError as exc:
            raise ApiError(
                400,
                "invalid request",
                [{"field": "code", "message": "a string of 4-10 digits is required"}],
            ) from exc
        await run_in_threadpool(own_flow, request_id, workspace)
        outcome = await run_in_threadpool(otp.verify, request_id, body.code)
        reply, status = verify_reply(outcome)
        # a recipient past its wrong-code budget waits, as a refused send does
        wait = {"Retry-After": str(reply["retry_after"])} if "retry_after" in reply else None
        return JSONResponse(reply, status_code=status, headers=wait)

    @app.get(
        "/v1/otpflow/{request_id}",
        tags=["flows"],
        summary="Flow status, every step and the event timeline",
        response_model=FlowOut,
        responses=errors(400, 401, 404, 503),
    )
    async def get_flow(
        workspace: Workspace,
        request_id: RequestId,
    ) -> dict[str, Any]:
        return flow_json(await run_in_threadpool(own_flow, request_id, workspace))

    @app.post(
        "/v1/dlr/{provider}",
        tags=["delivery reports"],
        summary="Provider DLR intake (authenticated by the signed token in the callback URL)",
        response_model=Accepted,
        response_model_exclude_none=True,
        responses=errors(400, 401, 404, 413, 415, 503),
    )
    async def dlr(
        provider: str, request: Request, token: Annotated[str | None, Query()] = None
    ) -> dict[str, Any]:
        body = await json_body(request)
        try:
            outcome = await run_in_threadpool(intake.receive, provider, token, body)
        except UnknownProvider as exc:
            raise ApiError(404, "unknown provider") from exc
        except BadToken as exc:
            raise ApiError(401, "invalid callback token") from exc
        except InvalidDlr as exc:
            raise ApiError(400, str(exc)) from exc
        except redis.RedisError as exc:
            raise ApiError(503, "flow store (Redis) is unreachable") from exc
        if outcome.kind == Kind.MISSING:
            raise ApiError(404, "no such flow")
        return {"success": True, "message": outcome.kind}

    @app.get("/healthz", tags=["operations"], summary="Liveness")
    async def healthz() -> dict[str, bool]:
        return {"ok": True}

    @app.get(
        "/readyz",
        tags=["operations"],
        summary="Readiness: Redis and the broker answer",
        response_model=Ready,
        responses={503: {"model": Ready}},
    )
    async def readyz() -> JSONResponse:
        checks = await run_in_threadpool(otp.health)
        ready = all(checks.values())
        body = {
            "ready": ready,
            "checks": {name: "ok" if ok else "unreachable" for name, ok in checks.items()},
        }
        return JSONResponse(body, status_code=200 if ready else 503)

    metrics = Metrics(otp.store.redis)

    # Unauthenticated, like every Prometheus target: counts only, no flow or caller data.
    @app.get(
        "/metrics",
        tags=["operations"],
        summary="Prometheus metrics of every process (kept in Redis)",
        response_class=Response,
        responses={200: {"content": {CONTENT_TYPE: {}}}},
    )
    async def prometheus_metrics() -> Response:
        try:
            body = await run_in_threadpool(render, metrics)
        except redis.RedisError as exc:
            raise ApiError(503, "flow store (Redis) is unreachable") from exc
        return Response(body, media_type=CONTENT_TYPE)

    return app


def _time(value: float | None) -> str | None:
    return iso(value) if value is not None else None


def flow_json(view: FlowView) -> dict[str, Any]:
    """A flow as the API shows it: statuses, providers, times and the event timeline."""
    return {
        "request_id": view.flow_id,
        "status": view.status,
        "current_step": view.current,
        "delivered_step": view.delivered_step,
        "reason": view.reason,
        "created_at": _time(view.created_at),
        "updated_at": _time(view.updated_at),
        "ended_at": _time(view.ended_at),
        "steps": [
            {
                "index": s.index,
                "channel": s.channel,
                "messageType": s.message_type,
                "timeout": s.timeout,
                "status": s.status,
                "provider": s.provider,
                "provider_message_id": s.message_id,
                "attempts": s.attempts,
                "claimed_at": _time(s.claimed_at),
                "sent_at": _time(s.accepted_at),
                "deadline": _time(s.deadline) if s.status in ("sending", "sent") else None,
                "ended_at": _time(s.ended_at),
                "dlr": s.dlr,
                "dlr_at": _time(s.dlr_at),
                "reason": s.reason,
            }
            for s in view.steps
        ],
        "events": [{**e, "ts": _time(e["ts"])} for e in view.events],
    }


def app_from_env() -> FastAPI:
    """The app of one of several API processes (``otpflow api --processes N``): each builds
    its own from the environment, after its parent has checked the settings."""
    with warnings.catch_warnings():  # the parent has told the development defaults already
        warnings.simplefilter("ignore", InsecureDefaultWarning)
        settings = load_settings()
    configure_logging(settings.log_level)
    return create_app(settings)
