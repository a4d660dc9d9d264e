"""MessageFlow-style SMS API (seed 002), as OTPflow reads it where the seed is silent.

``POST /v2.1/sms`` with headers ``Application-Key: <key>`` and ``Authorization: <token>``
(exact values; ``create_app(messageflow_application_key="mf-app-key",
messageflow_authorization="mf-token")`` by default) and a JSON body (unknown fields refused)::

    {"sender": str (non-empty),
     "message": str (non-empty),
     "phoneNumbers": [str, ...]   # E.164 with '+', "+" then 8-15 digits; 1..100 numbers
                                  # (OTPflow sends exactly one)
     "priority": bool,            # optional, default false: the MessageFlow Priority lane (OTP)
     "validity": int,             # optional, minutes, 1..4320
     "webhookUrl": str,           # optional, http/https: where DLRs are posted
     "externalId": str}           # optional, echoed in the reply and in DLRs

Every reply is the envelope ``{"meta": {"status", "numberOfErrors", "numberOfData"}, "data":
[...], "errors": [...]}``:

- accepted: 201, ``data`` has one entry per phone number, in order:
  ``{"smsId": "<uuid4>", "phoneNumber": "+91...", "externalId": str | null}``
- bad credentials: 401, ``errors: [{"title": "Unauthorized", "message": "..."}]``
- bad body: 400, ``errors: [{"title": "Validation error", "message": "<field>: ...",
  "source": "<field>"}]`` (``<field>`` e.g. ``phoneNumbers.0``; ``body`` when not a JSON object)
- rule ``reject`` for a number: 400, one error per rejected number
  ``{"title": "Invalid phone number", "message": "...", "source": "phoneNumbers.<i>"}``;
  nothing is sent
- rule ``error``: 500, ``errors: [{"title": "Internal server error", "message": "..."}]``

The request log gets one entry per phone number (channel "sms", recipient = the number without
'+', request_id = its smsId when accepted, else null); a body without readable numbers gives one
entry with recipient null.

DLR: ``POST webhookUrl`` with a JSON list (MessageFlow batches reports; the simulator sends one
report per post)::

    [{"smsId": "<uuid4>", "phoneNumber": "+91...", "externalId": str | null,
      "status": "Delivered" | "Undelivered" | "Expired" | <rule status>,
      "statusTime": "<ISO 8601 UTC, Z suffix>"}]

Rule ``deliver``/``slow`` posts "Delivered", ``fail`` posts "Undelivered" unless the rule's
``status`` says otherwise (e.g. "Expired"). ``/_sim/dlr`` takes the smsId as ``request_id`` and
posts the status it is given as is (default "Delivered").
"""

from __future__ import annotations

import asyncio
import time
import uuid
from functools import partial
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from .core import Message, SimState, read_json, sim_state, utc_now
from .outcomes import Rule
from .schemas import NonEmpty, Url, first_error

PATH = "/v2.1/sms"
E164 = Annotated[str, StringConstraints(pattern=r"^\+\d{8,15}$")]


class MessageFlowSms(BaseModel):
    """Body of ``POST /v2.1/sms``."""

    model_config = ConfigDict(extra="forbid", strict=True)

    sender: NonEmpty
    message: NonEmpty
    phoneNumbers: Annotated[list[E164], Field(min_length=1, max_length=100)]
    priority: bool = False
    validity: Annotated[int, Field(ge=1, le=4320)] | None = None
    webhookUrl: Url | None = None
    externalId: str | None = None


def envelope(
    status: int,
    data: list[dict[str, Any]] | None = None,
    errors: list[dict[str, Any]] | None = None,
) -> JSONResponse:
    """A MessageFlow reply: ``meta`` counts ``data`` and ``errors``."""
    data, errors = data or [], errors or []
    meta = {"status": status, "numberOfErrors": len(errors), "numberOfData": len(data)}
    return JSONResponse({"meta": meta, "data": data, "errors": errors}, status_code=status)


def dlr_body(
    sms_id: str, phone_number: str, external_id: str | None, status: str
) -> list[dict[str, Any]]:
    """MessageFlow's batched delivery report, here with one report."""
    return [
        {
            "smsId": sms_id,
            "phoneNumber": phone_number,
            "externalId": external_id,
            "status": status,
            "statusTime": utc_now(),
        }
    ]


def _numbers(body: Any) -> list[str | None]:
    """Recipients for the log: the body's phone numbers without '+', or [None]."""
    raw = body.get("phoneNumbers") if isinstance(body, dict) else None
    if isinstance(raw, list):
        found = [n.removeprefix("+") for n in raw if isinstance(n, str)]
        if found:
            return list(found)
    return [None]


def _authorized(state: SimState, request: Request) -> bool:
    return (
        request.headers.get("application-key") == state.messageflow_application_key
        and request.headers.get("authorization") == state.messageflow_authorization
    )


async def send(request: Request) -> JSONResponse:
    """``POST /v2.1/sms``."""
    state = sim_state(request)
    received_at = time.time()
    body = await read_json(request)

    def done(resp: JSONResponse, sms_ids: list[str | None] | None = None) -> JSONResponse:
        numbers = _numbers(body)
        for i, number in enumerate(numbers):
            state.log_request(
                received_at=received_at,
                path=PATH,
                channel="sms",
                recipient=number,
                headers=dict(request.headers),
                body=body,
                status_code=resp.status_code,
                request_id=sms_ids[i] if sms_ids else None,
            )
        return resp

    payload = _validated(state, request, body)
    if isinstance(payload, JSONResponse):
        return done(payload)

    rules = [
        state.rules.pick("sms", n.removeprefix("+"), "messageflow") for n in payload.phoneNumbers
    ]
    accept_delay = max(rule.accept_delay_ms for rule in rules)
    if accept_delay:
        await asyncio.sleep(accept_delay / 1000)
    if any(rule.action == "error" for rule in rules):
        error = {"title": "Internal server error", "message": "Unexpected error, try again"}
        return done(envelope(500, errors=[error]))
    rejected = [
        {
            "title": "Invalid phone number",
            "message": f"{number}: recipient is blocked",
            "source": f"phoneNumbers.{i}",
        }
        for i, (number, rule) in enumerate(zip(payload.phoneNumbers, rules, strict=True))
        if rule.action == "reject"
    ]
    if rejected:
        return done(envelope(400, errors=rejected))

    data = [
        _accept(state, payload, number, rule)
        for number, rule in zip(payload.phoneNumbers, rules, strict=True)
    ]
    return done(envelope(201, data=data), [d["smsId"] for d in data])


def _validated(state: SimState, request: Request, body: Any) -> MessageFlowSms | JSONResponse:
    """The request's payload, or the API's answer to a request it refuses."""
    if not _authorized(state, request):
        error = {"title": "Unauthorized", "message": "Invalid Application-Key or Authorization"}
        return envelope(401, errors=[error])
    if not isinstance(body, dict):
        error = {
            "title": "Validation error",
            "message": "body: must be a JSON object",
            "source": "body",
        }
        return envelope(400, errors=[error])
    try:
        return MessageFlowSms.model_validate(body)
    except ValidationError as exc:
        message = first_error(exc)
        error = {"title": "Validation error", "message": message, "source": message.split(":")[0]}
        return envelope(400, errors=[error])


def _accept(state: SimState, payload: MessageFlowSms, number: str, rule: Rule) -> dict[str, Any]:
    """Take one number's message for delivery as ``rule`` says; its entry in the reply."""
    sms_id = str(uuid.uuid4())
    msg = Message(
        request_id=sms_id,
        channel="sms",
        recipient=number.removeprefix("+"),
        post_back_url=payload.webhookUrl,
        render=partial(dlr_body, sms_id, number, payload.externalId),
        delivered="Delivered",
        failed="Undelivered",
    )
    state.accept(msg, rule)
    return {"smsId": sms_id, "phoneNumber": number, "externalId": payload.externalId}


def routes() -> list[Route]:
    """The MessageFlow route."""
    return [Route(PATH, send, methods=["POST"])]
