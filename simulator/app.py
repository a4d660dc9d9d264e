"""ASGI app of the provider simulator: every provider API, DLR postbacks, the /_sim API.

Provider APIs, each described (request, replies, DLR shape) in its module's docstring:

- :mod:`.zixflow`: Zixflow SMS, WhatsApp (ingest and campaign), RCS and email;
- :mod:`.messageflow`: MessageFlow SMS (``POST /v2.1/sms``, seed 002);
- :mod:`.gateway`: the JSON gateway (``POST /api/json.php``, seed 003);
- :mod:`.smtp`: a plain SMTP server for email (when ``smtp_port`` is given).

Control API (for tests, the demo and benchmarks):

- ``GET /_sim/requests?channel=&recipient=``: the request log, ``{"requests": [{"seq",
  "received_at", "path", "channel", "recipient", "headers", "body", "status_code",
  "request_id"}]}``; ``request_id`` is the id of the accepted message (Zixflow request_id,
  MessageFlow smsId, ``str(msg_id)`` for the gateway, a uuid4 for SMTP), null when refused.
  Each provider's module says what its entries hold (one per phone number or gateway item).
- ``GET /_sim/postbacks?request_id=``: every postback attempt, ``{"postbacks": [{"sent_at",
  "url", "request_id", "body", "attempt", "response_status", "error"}]}``.
- ``GET /_sim/rules``, ``POST /_sim/rules {"rules": [...]}``: outcome rules (see ``outcomes``).
- ``POST /_sim/reset``: forget requests, postbacks, messages, rules; cancel pending postbacks.
- ``POST /_sim/dlr {"request_id", "status"?, "delay_ms"?}``: post (again) a DLR for an accepted
  message, in that provider's own format; ``status`` is used as given (default: the provider's
  "delivered" word). 404 for an unknown request_id, 409 when the message has no DLR target.
- ``GET /healthz``.
"""

from __future__ import annotations

import asyncio
import gc
import json
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

import httpx
from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from . import gateway, messageflow, zixflow
from .core import POSTBACK_CONCURRENCY, SimState, sim_state
from .outcomes import RuleBook, parse_rules
from .schemas import first_error


async def _get_requests(request: Request) -> JSONResponse:
    """Request log, optionally filtered by ``channel`` and ``recipient``."""
    q = request.query_params
    rows = [
        r
        for r in sim_state(request).requests
        if ("channel" not in q or r["channel"] == q["channel"])
        and ("recipient" not in q or r["recipient"] == q["recipient"])
    ]
    return JSONResponse({"requests": rows})


async def _get_postbacks(request: Request) -> JSONResponse:
    """Postback log, optionally filtered by ``request_id``."""
    rid = request.query_params.get("request_id")
    rows = [p for p in sim_state(request).postbacks if rid is None or p["request_id"] == rid]
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
    state = sim_state(request)
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
    sim_state(request).reset()
    return JSONResponse({"ok": True})


async def _dlr(request: Request) -> JSONResponse:
    """Post (again) a postback for an accepted message: duplicate or late DLRs on demand."""
    state = sim_state(request)
    data = await _json_object(request)
    if data is None:
        return _bad("body must be a JSON object")
    msg = state.messages.get(str(data.get("request_id")))
    if msg is None:
        return _bad("unknown request_id", 404)
    if not msg.post_back_url:
        return _bad("message has no DLR target (post_back_url, webhookUrl or hook)", 409)
    status, delay_ms = data.get("status", msg.delivered), data.get("delay_ms", 0)
    if not isinstance(status, str) or not status:
        return _bad("status must be a non-empty string")
    if isinstance(delay_ms, bool) or not isinstance(delay_ms, int) or delay_ms < 0:
        return _bad("delay_ms must be a non-negative integer")
    state.schedule(msg, status, delay_ms)
    return JSONResponse({"ok": True, "request_id": msg.request_id, "status": status})


async def _healthz(request: Request) -> JSONResponse:
    return JSONResponse({"ok": True})


@asynccontextmanager
async def running(
    state: SimState, smtp_port: int | None, smtp_host: str, app: Starlette
) -> AsyncIterator[None]:
    """The app's lifespan: the postbacks' HTTP client, and the SMTP server when asked for."""
    state.client = httpx.AsyncClient(
        timeout=5.0,
        limits=httpx.Limits(
            max_connections=POSTBACK_CONCURRENCY, max_keepalive_connections=POSTBACK_CONCURRENCY
        ),
    )
    controller: Any = None
    try:
        if smtp_port is not None:
            from .smtp import start_smtp  # aiosmtpd only when SMTP is asked for

            loop = asyncio.get_running_loop()
            controller = await asyncio.to_thread(start_smtp, state, loop, smtp_port, smtp_host)
        # what is built is kept for good: full collections skip it, and no 30-70 ms pause
        # holds back a benchmark's sends and reports (as otpflow.config.process.freeze_heap
        # does; the simulator imports nothing of the product)
        gc.collect()
        gc.freeze()
        yield
    finally:
        if controller is not None:
            await asyncio.to_thread(controller.stop)
            state.smtp_port = None
        for task in list(state.tasks):
            task.cancel()
        await state.client.aclose()
        state.client = None


ROUTES = [
    *zixflow.routes(),
    *messageflow.routes(),
    *gateway.routes(),
    Route("/_sim/requests", _get_requests, methods=["GET"]),
    Route("/_sim/postbacks", _get_postbacks, methods=["GET"]),
    Route("/_sim/rules", _rules, methods=["GET", "POST"]),
    Route("/_sim/reset", _reset, methods=["POST"]),
    Route("/_sim/dlr", _dlr, methods=["POST"]),
    Route("/healthz", _healthz, methods=["GET"]),
]


def create_app(
    api_key: str = "sim-key",
    workspace_id: str = "sim-workspace",
    default_delay_ms: int = 200,
    rules: Iterable[dict[str, Any]] | None = None,
    postback_attempts: int = 4,
    *,
    messageflow_application_key: str = "mf-app-key",
    messageflow_authorization: str = "mf-token",
    gateway_auth: str = "gw-auth",
    smtp_port: int | None = None,
    smtp_host: str = "127.0.0.1",
) -> Starlette:
    """Build the simulator app; ``rules`` are outcome rule dicts (see ``outcomes.Rule``).

    ``api_key``/``workspace_id`` are Zixflow's headers, ``messageflow_*`` MessageFlow's
    ``Application-Key``/``Authorization`` headers, ``gateway_auth`` the JSON gateway's ``auth``.
    With ``smtp_port`` (``0``: any free port) the app's lifespan also runs an SMTP server on
    ``smtp_host``. A postback answered with a 5xx or not at all is tried again after 1, 2, 4, ...
    seconds, ``postback_attempts`` times in all, as providers do.
    """
    state = SimState(
        api_key,
        workspace_id,
        default_delay_ms,
        parse_rules(rules or []),
        postback_attempts,
        messageflow_application_key=messageflow_application_key,
        messageflow_authorization=messageflow_authorization,
        gateway_auth=gateway_auth,
    )

    app = Starlette(routes=ROUTES, lifespan=partial(running, state, smtp_port, smtp_host))
    app.state.sim = state
    return app
