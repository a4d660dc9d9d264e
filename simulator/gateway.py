"""JSON gateway (seed 003): voice, telegram, viber, whatsapp, rcs and sms in one API.

``POST /api/json.php`` with header ``Content-Type: application/json`` (else 400
``{"success": false, "error": "Content-Type must be application/json"}``) and body::

    {"auth": "<key>",            # create_app(gateway_auth="gw-auth") by default
     "data": [item, ...]}        # one or more items

    item = {"type": "pipeline",
            "pipeline": ["sms", ...],     # one or more of voice|telegram|viber|whatsapp|rcs|sms
            "id": int,                    # the caller's id, echoed back
            "phone": int,                 # digits of the E.164 number, no '+' (8-15 digits)
            "hook": "https://...",        # optional: where DLRs are posted
            # one object per channel in the pipeline (objects for other channels are ignored):
            "voice": {"message": str, "voice": {"gender": "female"|"male", "language": str,
                      "name": str} (optional), "dtmf": bool (optional, default false)},
            "telegram": {"message": str},
            "viber": {"type": "text", "signature": str, "message": str},
            "whatsapp": {"signature": str, "message": str},
            "rcs": {"signature": str, "message": str},
            "sms": {"signature": str, "message": str}}

Unknown fields inside an item are refused; extra top-level keys are ignored. OTPflow sends one
channel per item: the simulator "sends" only ``pipeline[0]``, the item's channel.

Replies:

- a body that is not a JSON object, or ``data`` not a non-empty list: 400
  ``{"success": false, "error": "..."}``
- wrong ``auth``: 200 ``{"success": false, "error": "Access denied"}``
- otherwise 200 ``{"success": true, "data": [result, ...]}``, one result per item, in order:

  - sent: ``{"success": true, "data": {"id": <item id>, "msg_id": <int, unique>, "data": 1,
    "parts": 1}}``
  - a signature (sender) of a pipeline channel empty or longer than 11 characters:
    ``{"success": false, "error": "Error in Alpha-name", "data": {"id": <item id>}}``
  - another bad field: ``{"success": false, "error": "<field>: ...", "data": {"id": <item id or
    null>}}``
  - rule ``reject``: ``{"success": false, "error": "Number is blocked", "data": {"id": ...}}``

- rule ``error`` for any item: 500 ``{"success": false, "error": "Internal server error"}``
  and nothing is sent.

The request log gets one entry per item: channel = ``pipeline[0]`` (null if unreadable),
recipient = ``str(phone)``, status_code = the HTTP status, request_id = ``str(msg_id)`` when
the item was sent, else null.

DLR (not documented by the seed; OTPflow's interpretation): ``POST hook`` with JSON::

    {"id": <item id>, "msg_id": <msg_id>, "channel": "sms"|"voice"|..., "phone": <phone int>,
     "status": "delivered"|"undelivered"|"expired"|"rejected"|"read", "time": <unix seconds int>}

Rule ``deliver``/``slow`` posts "delivered", ``fail`` posts "undelivered" unless the rule's
``status`` overrides it. ``/_sim/dlr`` takes ``msg_id`` (or ``str(msg_id)``) as ``request_id``
and posts the status it is given as is (default "delivered").
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from .core import Message, SimState, read_json, sim_state
from .outcomes import Rule
from .schemas import NonEmpty, Url, first_error

PATH = "/api/json.php"
GatewayChannel = Literal["voice", "telegram", "viber", "whatsapp", "rcs", "sms"]
CHANNELS: frozenset[str] = frozenset(get_args(GatewayChannel))
SIGNED = ("viber", "whatsapp", "rcs", "sms")
MAX_ALPHA_NAME = 11


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class VoiceSettings(_Strict):
    gender: Literal["female", "male"]
    language: NonEmpty
    name: NonEmpty


class Voice(_Strict):
    message: NonEmpty
    voice: VoiceSettings | None = None
    dtmf: bool = False


class Telegram(_Strict):
    message: NonEmpty


class Signed(_Strict):
    """whatsapp, rcs and sms: the signature is checked apart ("Error in Alpha-name")."""

    signature: str
    message: NonEmpty


class Viber(Signed):
    type: Literal["text"]


class Item(_Strict):
    """One ``data[]`` item."""

    type: Literal["pipeline"]
    pipeline: Annotated[list[GatewayChannel], Field(min_length=1)]
    id: int
    phone: Annotated[int, Field(ge=10_000_000, le=999_999_999_999_999)]
    hook: Url | None = None
    voice: Voice | None = None
    telegram: Telegram | None = None
    viber: Viber | None = None
    whatsapp: Signed | None = None
    rcs: Signed | None = None
    sms: Signed | None = None

    @property
    def channel(self) -> str:
        return self.pipeline[0]


def _fail(error: str, item_id: Any) -> dict[str, Any]:
    return {"success": False, "error": error, "data": {"id": item_id}}


def _check(raw: Any) -> Item | dict[str, Any]:
    """The validated item, or the per-item error result."""
    item_id = raw.get("id") if isinstance(raw, dict) else None
    if not isinstance(item_id, int) or isinstance(item_id, bool):
        item_id = None
    try:
        item = Item.model_validate(raw)
    except ValidationError as exc:
        return _fail(first_error(exc), item_id)
    for channel in item.pipeline:
        params = getattr(item, channel)
        if params is None:
            return _fail(f"{channel}: required when the pipeline has {channel}", item.id)
        if channel in SIGNED:
            signature = params.signature.strip()
            if not signature or len(params.signature) > MAX_ALPHA_NAME:
                return _fail("Error in Alpha-name", item.id)
    return item


def _log_fields(raw: Any) -> tuple[str | None, str | None]:
    """(channel, recipient) of a raw item, for the request log."""
    if not isinstance(raw, dict):
        return None, None
    pipeline, phone = raw.get("pipeline"), raw.get("phone")
    channel = None
    if isinstance(pipeline, list) and pipeline and pipeline[0] in CHANNELS:
        channel = pipeline[0]
    recipient = str(phone) if isinstance(phone, int) and not isinstance(phone, bool) else None
    return channel, recipient


def _render(item: Item, msg_id: int) -> Any:
    def render(status: str) -> dict[str, Any]:
        return {
            "id": item.id,
            "msg_id": msg_id,
            "channel": item.channel,
            "phone": item.phone,
            "status": status,
            "time": int(time.time()),
        }

    return render


@dataclass
class _Pending:
    item: Item
    rule: Rule


async def send(request: Request) -> JSONResponse:
    """``POST /api/json.php``."""
    state = sim_state(request)
    received_at = time.time()
    body = await read_json(request)
    data = body.get("data") if isinstance(body, dict) else None
    has_items = isinstance(data, list) and bool(data)
    items: list[Any] = data if isinstance(data, list) and data else [None]

    def done(resp: JSONResponse, request_ids: list[str | None] | None = None) -> JSONResponse:
        for i, raw in enumerate(items):
            channel, recipient = _log_fields(raw)
            state.log_request(
                received_at=received_at,
                path=PATH,
                channel=channel,
                recipient=recipient,
                headers=dict(request.headers),
                body=body,
                status_code=resp.status_code,
                request_id=request_ids[i] if request_ids else None,
            )
        return resp

    def refuse(error: str, code: int = 400) -> JSONResponse:
        return done(JSONResponse({"success": False, "error": error}, status_code=code))

    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != "application/json":
        return refuse("Content-Type must be application/json")
    if not isinstance(body, dict):
        return refuse("Request body must be a JSON object")
    if body.get("auth") != state.gateway_auth:
        return refuse("Access denied", 200)
    if not has_items:
        return refuse("data: must be a non-empty list")

    checked: list[_Pending | dict[str, Any]] = []
    for raw in items:
        result = _check(raw)
        if isinstance(result, Item):
            checked.append(
                _Pending(result, state.rules.pick(result.channel, str(result.phone), "gateway"))
            )
        else:
            checked.append(result)
    pending = [p for p in checked if isinstance(p, _Pending)]
    accept_delay = max((p.rule.accept_delay_ms for p in pending), default=0)
    if accept_delay:
        await asyncio.sleep(accept_delay / 1000)
    if any(p.rule.action == "error" for p in pending):
        return refuse("Internal server error", 500)

    results, request_ids = _accept_all(state, checked)
    return done(JSONResponse({"success": True, "data": results}), request_ids)


def _accept_all(
    state: SimState, checked: list[_Pending | dict[str, Any]]
) -> tuple[list[dict[str, Any]], list[str | None]]:
    """Each item's result as the reply lists it, and the request id of each one taken."""
    results: list[dict[str, Any]] = []
    request_ids: list[str | None] = []
    for entry in checked:
        if not isinstance(entry, _Pending):
            results.append(entry)
            request_ids.append(None)
            continue
        item, rule = entry.item, entry.rule
        if rule.action == "reject":
            results.append(_fail("Number is blocked", item.id))
            request_ids.append(None)
            continue
        msg_id = next(state.gateway_ids)
        msg = Message(
            request_id=str(msg_id),
            channel=item.channel,
            recipient=str(item.phone),
            post_back_url=item.hook,
            render=_render(item, msg_id),
            delivered="delivered",
            failed="undelivered",
        )
        state.accept(msg, rule)
        results.append(
            {"success": True, "data": {"id": item.id, "msg_id": msg_id, "data": 1, "parts": 1}}
        )
        request_ids.append(str(msg_id))
    return results, request_ids


def routes() -> list[Route]:
    """The gateway route."""
    return [Route(PATH, send, methods=["POST"])]
