"""The API's routes, at module level: flows (start, read, cancel, verify), the providers'
delivery reports, and the operator's probes and metrics.

Every route takes the process's ``Services`` as a dependency (``api: Api``); blocking calls to
Redis and the broker run in the thread pool, never on the event loop. Redis failing under a
route is answered 503 by one handler (``errors.py``).
"""

from __future__ import annotations

import time
from typing import Annotated, Any

import redis
from fastapi import APIRouter, Header, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response
from pydantic import ValidationError

from otpflow.api.body import json_body
from otpflow.api.deps import Api, RequestId, Services, Workspace
from otpflow.api.dlr import BadToken, InvalidDlr, UnknownProvider
from otpflow.api.errors import ApiError, invalid_field
from otpflow.api.metrics import CONTENT_TYPE, render
from otpflow.api.schemas import (
    Accepted,
    BlocksOut,
    FeedbackBody,
    FlowOut,
    Ready,
    RoutingOut,
    VerifyBody,
    block_json,
    body_schema,
    error_responses,
    flow_json,
)
from otpflow.flow.fraud import BLOCK_ID
from otpflow.flow.models import FlowEnvelope
from otpflow.flow.states import Kind
from otpflow.flow.views import FlowView
from otpflow.producers.errors import verify_reply

router = APIRouter()


def json_request(model: type[Any]) -> dict[str, Any]:
    """OpenAPI's entry for a route that reads its JSON body itself (through json_body)."""
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": body_schema(model)}},
        }
    }


def limit_workspace(api: Services, workspace: str) -> None:
    """At most ``OTPFLOW_LIMITS__WORKSPACE_RPS`` new flows per second per workspace."""
    try:
        count = api.otp.store.count_request(workspace, int(time.time()))
    except redis.RedisError as exc:
        raise ApiError(503, "flow store (Redis) is unreachable; nothing was stored") from exc
    if count > api.settings.limits.workspace_rps:
        raise ApiError(429, "too many requests for this workspace", retry_after=1)


def own_flow(api: Services, request_id: str, workspace: str) -> FlowView:
    view = api.otp.status(request_id, workspace)
    if view is None:
        raise ApiError(404, "no such flow")
    return view


@router.post(
    "/v1/otpflow",
    tags=["flows"],
    summary="Start a flow",
    response_model=Accepted,
    response_model_exclude_none=True,
    responses=error_responses(400, 401, 403, 409, 413, 415, 429, 503),
    openapi_extra=json_request(FlowEnvelope),
)
async def start_flow(
    request: Request,
    api: Api,
    workspace: Workspace,
    idempotency_key: Annotated[str | None, Header(max_length=255)] = None,
) -> dict[str, Any]:
    await run_in_threadpool(limit_workspace, api, workspace)
    raw = await json_body(request)
    flow_id = await run_in_threadpool(api.otp.send, raw, workspace, idempotency_key)
    return {"success": True, "message": "flow accepted", "request_id": flow_id}


@router.post(
    "/v1/otpflow/{request_id}/cancel",
    tags=["flows"],
    summary="Cancel a flow: no step is sent after this",
    response_model=Accepted,
    response_model_exclude_none=True,
    responses=error_responses(400, 401, 404, 409, 503),
)
async def cancel_flow(api: Api, workspace: Workspace, request_id: RequestId) -> dict[str, Any]:
    await run_in_threadpool(own_flow, api, request_id, workspace)
    outcome = await run_in_threadpool(api.otp.cancel, request_id)
    if outcome.kind != Kind.CANCELLED:
        raise ApiError(409, f"the flow has already ended ({outcome.detail})")
    return {"success": True, "message": "flow cancelled", "status": "cancelled"}


@router.post(
    "/v1/otpflow/{request_id}/verify",
    tags=["flows"],
    summary="Check the code the person typed",
    response_model=Accepted,
    response_model_exclude_none=True,
    responses=error_responses(400, 401, 404, 409, 410, 413, 415, 423, 429, 503),
    openapi_extra=json_request(VerifyBody),
)
async def verify_code(
    request: Request, api: Api, workspace: Workspace, request_id: RequestId
) -> JSONResponse:
    try:
        body = VerifyBody.model_validate(await json_body(request))
    except ValidationError as exc:
        raise invalid_field("code", "a string of 4-10 digits is required") from exc
    await run_in_threadpool(own_flow, api, request_id, workspace)
    outcome = await run_in_threadpool(api.otp.verify, request_id, body.code)
    reply, status = verify_reply(outcome)
    # a recipient past its wrong-code budget waits, as a refused send does
    wait = {"Retry-After": str(reply["retry_after"])} if "retry_after" in reply else None
    return JSONResponse(reply, status_code=status, headers=wait)


@router.post(
    "/v1/otpflow/{request_id}/feedback",
    tags=["flows"],
    summary="Report a code the caller checked itself as verified (counts for fraud conversion)",
    response_model=Accepted,
    response_model_exclude_none=True,
    responses=error_responses(400, 401, 404, 413, 415, 503),
    openapi_extra=json_request(FeedbackBody),
)
async def feedback(
    request: Request, api: Api, workspace: Workspace, request_id: RequestId
) -> dict[str, Any]:
    try:
        FeedbackBody.model_validate(await json_body(request))
    except ValidationError as exc:
        raise invalid_field("event", "must be 'verified'") from exc
    await run_in_threadpool(own_flow, api, request_id, workspace)
    first = await run_in_threadpool(api.otp.feedback, request_id)
    return {"success": True, "message": "feedback recorded" if first else "already recorded"}


@router.get(
    "/v1/fraud/blocks",
    tags=["fraud"],
    summary="The fraud guard's blocks in force for this workspace",
    response_model=BlocksOut,
    responses=error_responses(401, 503),
)
async def fraud_blocks(api: Api, workspace: Workspace) -> dict[str, Any]:
    blocks = await run_in_threadpool(api.otp.store.fraud.blocks, workspace)
    return {"blocks": [block_json(block) for block in blocks]}


@router.delete(
    "/v1/fraud/blocks/{block_id}",
    tags=["fraud"],
    summary="Lift a block: its prefix or country starts afresh",
    response_model=Accepted,
    response_model_exclude_none=True,
    responses=error_responses(400, 401, 404, 503),
)
async def lift_block(
    api: Api, workspace: Workspace, block_id: Annotated[str, Path()]
) -> dict[str, Any]:
    if not BLOCK_ID.fullmatch(block_id):
        raise invalid_field("block_id", "an id GET /v1/fraud/blocks lists")
    lifted = await run_in_threadpool(api.otp.store.fraud.lift, workspace, block_id)
    if not lifted:
        raise ApiError(404, "no such block")
    return {"success": True, "message": "block lifted"}


# Statistics of the providers every workspace shares (no flow, recipient or workspace in them).
@router.get(
    "/v1/routing/stats",
    tags=["routing"],
    summary="Adaptive routing's live table: each provider's statistics, score and breaker",
    response_model=RoutingOut,
    responses=error_responses(401, 503),
)
async def routing_stats(api: Api, workspace: Workspace) -> dict[str, Any]:
    routing = api.settings.routing
    rows = await run_in_threadpool(api.otp.router.table)
    return {
        "mode": routing.mode,
        "policy": routing.policy,
        "window_seconds": routing.window_seconds,
        "rows": rows,
    }


@router.get(
    "/v1/otpflow/{request_id}",
    tags=["flows"],
    summary="Flow status, every step and the event timeline",
    response_model=FlowOut,
    responses=error_responses(400, 401, 404, 503),
)
async def get_flow(api: Api, workspace: Workspace, request_id: RequestId) -> dict[str, Any]:
    return flow_json(await run_in_threadpool(own_flow, api, request_id, workspace))


@router.post(
    "/v1/dlr/{provider}",
    tags=["delivery reports"],
    summary="Provider DLR intake (authenticated by the signed token in the callback URL)",
    response_model=Accepted,
    response_model_exclude_none=True,
    responses=error_responses(400, 401, 404, 413, 415, 503),
)
async def dlr(
    provider: str, request: Request, api: Api, token: Annotated[str | None, Query()] = None
) -> dict[str, Any]:
    body = await json_body(request)
    try:
        outcome = await run_in_threadpool(api.intake.receive, provider, token, body)
    except UnknownProvider as exc:
        raise ApiError(404, "unknown provider") from exc
    except BadToken as exc:
        raise ApiError(401, "invalid callback token") from exc
    except InvalidDlr as exc:
        raise ApiError(400, str(exc)) from exc
    if outcome.kind == Kind.MISSING:
        raise ApiError(404, "no such flow")
    return {"success": True, "message": outcome.kind}


@router.get("/healthz", tags=["operations"], summary="Liveness")
async def healthz() -> dict[str, bool]:
    return {"ok": True}


@router.get(
    "/readyz",
    tags=["operations"],
    summary="Readiness: Redis and the broker answer",
    response_model=Ready,
    responses={503: {"model": Ready}},
)
async def readyz(api: Api) -> JSONResponse:
    checks = await run_in_threadpool(api.otp.health)
    ready = all(checks.values())
    body = {
        "ready": ready,
        "checks": {name: "ok" if ok else "unreachable" for name, ok in checks.items()},
    }
    return JSONResponse(body, status_code=200 if ready else 503)


# Unauthenticated, like every Prometheus target: counts only, no flow or caller data.
@router.get(
    "/metrics",
    tags=["operations"],
    summary="Prometheus metrics of every process (kept in Redis)",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE: {}}}},
)
async def prometheus_metrics(api: Api) -> Response:
    body = await run_in_threadpool(render, api.metrics, api.otp.router)
    return Response(body, media_type=CONTENT_TYPE)
