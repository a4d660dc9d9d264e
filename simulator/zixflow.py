"""Zixflow-style ingest and campaign APIs: SMS, WhatsApp, RCS and email.

Every endpoint needs the headers ``x-api-key`` and ``x-workspace-id`` (``create_app(api_key=...,
workspace_id=...)``; an ``Authorization: Bearer <api_key>`` header is also accepted) and takes a
JSON object; unknown fields are refused. Replies (``{"status", "message"}`` for the campaign API):

- accepted: 200 ``{"success": true, "message": "<channel> request queued successfully",
  "request_id": "<uuid4>"}``
- bad credentials: 401 ``{"success": false, "message": "Invalid API key or workspace id"}``
- bad body: 400 ``{"success": false, "message": "<field>: <what is wrong>"}``
- rule ``reject``: 400 ``{"success": false, "message": "Recipient is blocked"}``;
  rule ``error``: 500 ``{"success": false, "message": "Internal server error"}``

Endpoints (channel in the request log; the log's ``recipient`` is the named field):

- ``POST /api/ingest/sms/v1/message/send`` (seed 001; "sms", ``recipient``):
  ``recipient`` (8-15 digits, no '+'), ``message``, ``sender_id``,
  ``route`` (promotional|transactional|otp), ``is_flash`` (bool, optional), ``dlt_entity_id``,
  ``dlt_template_id``, ``post_back_url`` (http/https), ``post_back_data`` (string) - all optional
  after ``route``. Reply message "SMS request queued successfully".
- ``POST /api/ingest/whatsapp/v1/template/send`` ("whatsapp", ``recipient``): ``recipient``,
  ``phone_id``, ``template_name``, optional ``variables`` (object or list), ``language``,
  ``post_back_url``, ``post_back_data``. Reply message "WhatsApp request queued successfully".
- ``POST /api/ingest/whatsapp/v1/message/interactive/reply-buttons/send`` ("whatsapp"):
  ``recipient``, ``phone_id``, ``interactive`` (seed-004 reply-buttons object),
  ``post_back_url``, ``post_back_data``.
- ``POST /api/ingest/whatsapp/v1/message/text/send`` ("whatsapp"): ``recipient``, ``phone_id``,
  ``text`` (1-4096), optional ``preview_url`` (bool), ``post_back_url``, ``post_back_data``.
- ``POST /api/v1/campaign/whatsapp/message/send`` (seed 004; "whatsapp", ``to``): ``to``,
  ``phoneId``, ``type`` ("interactive"), ``interactive``, ``source``, ``linkWithRecord``,
  ``submissionStatus``. Replies ``{"status": true, "message": "success"}``; no callback URL,
  so no DLR is ever posted.
- ``POST /api/ingest/rcs/v1/message/send`` ("rcs", ``recipient``): ``recipient`` (digits),
  ``bot_id``, ``type`` (text|image|video|audio|document|template), then per ``type``:

  - text: ``text`` (1-4096 characters);
  - image, video, audio: ``media_url`` (http/https), optional ``caption`` (1-1024);
  - document: ``media_url``, optional ``caption``, optional ``file_name`` (1-256);
  - template: ``template_name``, optional ``variables`` (JSON object);

  a field of another type is refused; plus optional ``post_back_url``, ``post_back_data``.
  Reply message "RCS request queued successfully".
- ``POST /api/ingest/email/v1/send`` ("email", ``to``): ``to`` (email), ``from`` (email),
  ``subject`` (1-998), ``text`` and/or ``html`` (at least one; else 400 "text: text or html is
  required"), optional ``reply_to`` (email), ``post_back_url``, ``post_back_data``.
  Reply message "Email request queued successfully".

DLR (one shape for every channel, see SPEC): ``POST post_back_url`` with JSON

    {"workspace_id": str, "type": "delivery_status", "message_id": "<uuid4>",
     "request_id": "<the reply's request_id>", "channel": "sms"|"whatsapp"|"rcs"|"email",
     "recipient": "<recipient digits, or the email 'to' address>",
     "status": "delivered"|"failed"|<rule status, e.g. "read", "expired">,
     "remark": str, "status_at": "<ISO 8601 UTC, Z suffix>", "post_back_data": str | null}

Rule ``deliver``/``slow`` posts "delivered", ``fail`` posts "failed" (or the rule's
``status``). ``/_sim/dlr`` re-posts this shape with the status it is given.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from .core import Message, SimState, read_json, sim_state, utc_now
from .outcomes import Rule
from .schemas import (
    CampaignSend,
    FieldError,
    SmsSend,
    WhatsAppButtons,
    WhatsAppTemplate,
    WhatsAppText,
    first_error,
    parse_email,
    parse_rcs,
)

Style = Literal["ingest", "campaign"]
REMARKS = {"delivered": "Message delivered", "failed": "Message delivery failed"}


@dataclass(frozen=True)
class Endpoint:
    """One simulated Zixflow endpoint."""

    path: str
    parse: Callable[[Any], BaseModel]
    channel: str
    recipient_field: str
    ok_message: str
    style: Style = "ingest"


WHATSAPP_OK = "WhatsApp request queued successfully"

ENDPOINTS = (
    Endpoint(
        "/api/ingest/sms/v1/message/send",
        SmsSend.model_validate,
        "sms",
        "recipient",
        "SMS request queued successfully",
    ),
    Endpoint(
        "/api/ingest/whatsapp/v1/template/send",
        WhatsAppTemplate.model_validate,
        "whatsapp",
        "recipient",
        WHATSAPP_OK,
    ),
    Endpoint(
        "/api/ingest/whatsapp/v1/message/interactive/reply-buttons/send",
        WhatsAppButtons.model_validate,
        "whatsapp",
        "recipient",
        WHATSAPP_OK,
    ),
    Endpoint(
        "/api/ingest/whatsapp/v1/message/text/send",
        WhatsAppText.model_validate,
        "whatsapp",
        "recipient",
        WHATSAPP_OK,
    ),
    Endpoint(
        "/api/v1/campaign/whatsapp/message/send",
        CampaignSend.model_validate,
        "whatsapp",
        "to",
        "success",
        style="campaign",
    ),
    Endpoint(
        "/api/ingest/rcs/v1/message/send",
        parse_rcs,
        "rcs",
        "recipient",
        "RCS request queued successfully",
    ),
    Endpoint(
        "/api/ingest/email/v1/send",
        parse_email,
        "email",
        "to",
        "Email request queued successfully",
    ),
)


def postback_body(
    state: SimState,
    *,
    message_id: str,
    request_id: str,
    channel: str,
    recipient: str,
    post_back_data: str | None,
    status: str,
) -> dict[str, Any]:
    """Zixflow's delivery postback."""
    return {
        "workspace_id": state.workspace_id,
        "type": "delivery_status",
        "message_id": message_id,
        "request_id": request_id,
        "channel": channel,
        "recipient": recipient,
        "status": status,
        "remark": REMARKS.get(status, f"Message {status}"),
        "status_at": utc_now(),
        "post_back_data": post_back_data,
    }


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
        state = sim_state(request)
        received_at = time.time()
        body = await read_json(request)
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
            payload = ep.parse(body)
        except ValidationError as exc:
            return done(_reply(ep, 400, first_error(exc)))
        except FieldError as exc:
            return done(_reply(ep, 400, str(exc)))

        rule = state.rules.pick(ep.channel, recipient, "zixflow")
        if rule.accept_delay_ms:
            await asyncio.sleep(rule.accept_delay_ms / 1000)
        if rule.action == "reject":
            return done(_reply(ep, 400, "Recipient is blocked"))
        if rule.action == "error":
            return done(_reply(ep, 500, "Internal server error"))

        request_id = _accept(state, ep, payload, str(recipient), rule)
        return done(_reply(ep, 200, ep.ok_message, request_id))

    return handle


def _accept(state: SimState, ep: Endpoint, payload: Any, recipient: str, rule: Rule) -> str:
    """Take the message for delivery as ``rule`` says; its request id."""
    request_id = str(uuid.uuid4())
    message_id = str(uuid.uuid4())
    post_back_data = getattr(payload, "post_back_data", None)

    def render(status: str) -> dict[str, Any]:
        return postback_body(
            state,
            message_id=message_id,
            request_id=request_id,
            channel=ep.channel,
            recipient=recipient,
            post_back_data=post_back_data,
            status=status,
        )

    msg = Message(
        request_id=request_id,
        channel=ep.channel,
        recipient=recipient,
        post_back_url=getattr(payload, "post_back_url", None),
        render=render,
    )
    state.accept(msg, rule)
    return request_id


def routes() -> list[Route]:
    """Routes of every Zixflow endpoint."""
    return [Route(ep.path, _send_handler(ep), methods=["POST"]) for ep in ENDPOINTS]
