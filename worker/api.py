"""The HTTP API (FastAPI): submit flows, read them, take delivery reports.

``POST /v1/otpflow`` calls the same client function a Django or Flask app calls. Bad requests
get a 400 naming every bad field by its path; nothing is stored or enqueued for them.
"""

from __future__ import annotations

import hmac
import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

import httpx
import redis
from fastapi import FastAPI, Header, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from otpflow.config.settings import Settings
from otpflow.flow.models import FlowEnvelope, InvalidRequest
from otpflow.flow.store import FlowView
from otpflow.producers.client import OtpflowClient, ServiceUnavailable
from otpflow.worker.dlr import BadToken, DlrIntake, InvalidDlr, UnknownProvider
from otpflow.worker.providers import build_providers
from otpflow.worker.webhooks import iso

logger = logging.getLogger("otpflow.api")

MAX_BODY_BYTES = 64 * 1024


class ApiError(Exception):
    def __init__(self, status: int, message: str, errors: list[dict[str, str]] | None = None):
        self.status = status
        self.message = message
        self.errors = errors


def create_app(settings: Settings, client: OtpflowClient | None = None) -> FastAPI:
    """The API for one process; the client (Redis, broker) is built here unless given."""
    otp = client or OtpflowClient(settings)
    http = httpx.Client(timeout=settings.provider_timeout_seconds)
    intake = DlrIntake(
        otp.store,
        build_providers(settings, http),
        settings.secret.get_secret_value(),
        otp.check_now,
        otp.relay_dlr,
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        http.close()
        otp.close()

    app = FastAPI(
        title="OTPflow",
        version="0.1.0",
        summary="Multi-channel OTP delivery with delivery-report driven fallback.",
        lifespan=lifespan,
    )

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        body: dict[str, Any] = {"success": False, "message": exc.message}
        if exc.errors is not None:
            body["errors"] = exc.errors
        return JSONResponse(body, status_code=exc.status)

    def workspace_of(api_key: str | None, workspace: str | None) -> str:
        expected = settings.api_keys.get(workspace or "")
        if (
            not api_key
            or expected is None
            or not hmac.compare_digest(expected.encode(), api_key.encode())
        ):
            raise ApiError(401, "missing or wrong x-api-key / x-workspace-id")
        return workspace  # type: ignore[return-value]

    async def json_body(request: Request) -> Any:
        raw = await request.body()
        if len(raw) > MAX_BODY_BYTES:
            raise ApiError(413, f"body larger than {MAX_BODY_BYTES} bytes")
        try:
            return json.loads(raw)
        except ValueError as exc:
            raise ApiError(
                400, "body is not valid JSON", [{"field": "body", "message": "invalid JSON"}]
            ) from exc

    @app.post(
        "/v1/otpflow",
        tags=["flows"],
        summary="Start a flow",
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": FlowEnvelope.model_json_schema()}},
            }
        },
    )
    async def start_flow(
        request: Request,
        x_api_key: Annotated[str | None, Header()] = None,
        x_workspace_id: Annotated[str | None, Header()] = None,
    ) -> dict[str, Any]:
        workspace = workspace_of(x_api_key, x_workspace_id)
        raw = await json_body(request)
        try:
            flow_id = await run_in_threadpool(otp.send, raw, workspace)
        except InvalidRequest as exc:
            errors = [{"field": e.path, "message": e.message} for e in exc.errors]
            raise ApiError(400, "invalid request: " + str(exc), errors) from exc
        except ServiceUnavailable as exc:
            raise ApiError(503, f"{exc}; nothing was stored, try again") from exc
        return {"success": True, "message": "flow accepted", "request_id": flow_id}

    @app.get("/v1/otpflow/{request_id}", tags=["flows"], summary="Flow status and timeline")
    async def get_flow(
        request_id: str,
        x_api_key: Annotated[str | None, Header()] = None,
        x_workspace_id: Annotated[str | None, Header()] = None,
    ) -> dict[str, Any]:
        workspace = workspace_of(x_api_key, x_workspace_id)
        try:
            view = await run_in_threadpool(otp.status, request_id)
        except ServiceUnavailable as exc:
            raise ApiError(503, str(exc)) from exc
        if view is None or view.workspace != workspace:
            raise ApiError(404, "no such flow")
        return flow_json(view)

    @app.post("/v1/dlr/{provider}", tags=["delivery reports"], summary="Provider DLR intake")
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
        if outcome.kind == "missing":
            raise ApiError(404, "no such flow")
        return {"success": True, "message": outcome.kind}

    @app.get("/healthz", tags=["operations"], summary="Liveness")
    async def healthz() -> dict[str, bool]:
        return {"ok": True}

    @app.get("/readyz", tags=["operations"], summary="Readiness: Redis and the broker answer")
    async def readyz() -> JSONResponse:
        checks = await run_in_threadpool(otp.health)
        ready = all(checks.values())
        body = {
            "ready": ready,
            "checks": {name: "ok" if ok else "unreachable" for name, ok in checks.items()},
        }
        return JSONResponse(body, status_code=200 if ready else 503)

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
