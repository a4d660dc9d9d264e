"""What the API's bodies look like: the request and response models its OpenAPI document
shows, and ``flow_json``, a flow as the API (and the CLI) shows it."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from otpflow.flow.times import iso
from otpflow.flow.views import FlowView


class ErrorBody(BaseModel):
    success: bool = False
    message: str
    errors: list[dict[str, str]] | None = Field(
        default=None, description="every bad field by its dotted path"
    )
    attempts_left: int | None = None
    reason: str | None = Field(
        default=None,
        description="for a 403 of the fraud guard: country_not_allowed, number_type, "
        "country_limit, prefix_velocity, low_conversion or blocked",
    )


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
    status: str = Field(
        description="queued, in_progress, delivered, failed, cancelled, verified, blocked"
    )
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


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for the error statuses an operation can answer."""
    return {status: {"model": ErrorBody} for status in statuses}


class VerifyBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: Annotated[str, StringConstraints(pattern=r"^[0-9]{4,10}$")]


class FeedbackBody(BaseModel):
    """What the caller's own check of the code found (only a right code is reported)."""

    model_config = ConfigDict(extra="forbid")

    event: Literal["verified"]


class BlockOut(BaseModel):
    id: str = Field(description="what DELETE /v1/fraud/blocks/{id} takes")
    scope: str = Field(description="prefix or country")
    value: str = Field(description="the prefix (E.164 without its last digits) or country")
    country: str
    reason: str = Field(description="prefix_velocity or low_conversion")
    detail: str = Field(description="what tripped it, in words")
    since: str
    until: str
    mode: str = Field(
        description="the mode it was made in: enforce, shadow or monitor (a block made in "
        "monitor mode refuses nothing once the workspace enforces)"
    )
    refused: int = Field(description="flows refused by it so far (or, monitor: would have been)")
    flows: int = Field(
        description="what the rule counted: flows in the velocity window, or codes whose chance "
        "had ended in the conversion window"
    )
    verified: int | None = Field(description="of those codes, the verified (low_conversion)")
    window_seconds: int = Field(description="the rule's window")


class BlocksOut(BaseModel):
    blocks: list[BlockOut]


class RouteRow(BaseModel):
    """One (provider, channel, country) of the routing statistics' window."""

    provider: str
    channel: str
    country: str
    counts: dict[str, int]
    delivered_share: float | None
    error_share: float | None
    latency_p50_seconds: float | None
    latency_p90_seconds: float | None
    conversion: float | None
    price: float | None
    score: float
    factors: dict[str, Any]
    rank: int
    preferred: bool
    configured: bool
    breaker: str


class RoutingOut(BaseModel):
    mode: str
    policy: str
    window_seconds: int
    rows: list[RouteRow]


def block_json(raw: dict[str, str]) -> dict[str, Any]:
    """A stored block as the API shows it."""
    return {
        **{name: raw.get(name, "") for name in ("id", "scope", "value", "country", "reason")},
        "detail": raw.get("detail", ""),
        "since": iso(float(raw["since"])),
        "until": iso(float(raw["until"])),
        "mode": raw.get("mode", ""),
        "refused": int(raw.get("refused", "0")),
        "flows": int(raw.get("flows") or 0),
        "verified": int(raw["verified"]) if raw.get("verified") else None,
        "window_seconds": int(raw.get("window") or 0),
    }


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
