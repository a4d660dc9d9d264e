"""The support dashboard at ``/dashboard``: "did the code reach this person?" in a browser.

Server-rendered pages (Jinja2) with htmx for a running flow's live story and Chart.js for the
delivery charts, both shipped in ``static/`` (nothing is fetched from a CDN). A session
belongs to one workspace and sees only its flows. Recipients are shown masked, found by an
exact, keyed lookup (``FlowStore.dashboard``); no page holds a message's text or code.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from importlib.resources import files
from typing import Annotated, Any
from urllib.parse import parse_qs

import phonenumbers
from fastapi import APIRouter, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from otpflow.api.dashboard_auth import (
    SIGNIN_COOKIE,
    DashboardSession,
    authenticate,
    close_session,
    current_session,
    open_session,
    remember_signin,
    same_token,
    signin_token,
)
from otpflow.api.dashboard_views import analytics_context, flow_context, flow_rows
from otpflow.api.deps import Api, Services
from otpflow.api.errors import ApiError
from otpflow.flow.fields import email_limit_key, phone_limit_key

STATIC_DIR = str(files("otpflow.api") / "static")
STATIC_PATH = "/dashboard/static"
# what a sign-in or a form may post: a few short fields
MAX_FORM_BYTES = 4096
PERIODS = {"hour": 3600, "day": 24 * 3600, "week": 7 * 24 * 3600}
# wrong sign-ins to one user (or one workspace's key) before it is locked for a while
MAX_SIGNIN_FAILURES = 10
LOCKOUT_SECONDS = 15 * 60

templates = Jinja2Templates(directory=str(files("otpflow.api") / "templates"))
templates.env.globals["static"] = lambda name: f"{STATIC_PATH}/{name}"

router = APIRouter(prefix="/dashboard", include_in_schema=False)


def page(request: Request, name: str, context: dict[str, Any], status: int = 200) -> Response:
    response = templates.TemplateResponse(request, name, context, status_code=status)
    # no page is cached or framed: a shared computer's back button shows nothing
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Content-Security-Policy"] = (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; frame-ancestors 'none'"
    )
    return response


async def form(request: Request) -> dict[str, str]:
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        raise ApiError(413, "form too large")
    return {k: v[0] for k, v in parse_qs(body.decode(errors="replace")).items()}


def to_signin() -> RedirectResponse:
    return RedirectResponse("/dashboard/signin", status_code=303)


class _SignIn(Exception):
    """No session: the browser is sent to sign in; a page's live part (htmx) is answered 401."""

    def __init__(self, live: bool = False) -> None:
        super().__init__("not signed in")
        self.live = live


class _Refused(Exception):
    """A page that cannot be shown, with why (an HTML page, not the API's JSON)."""

    def __init__(self, status: int, message: str, session: DashboardSession | None) -> None:
        super().__init__(message)
        self.status, self.message, self.session = status, message, session


async def session_of(api: Services, request: Request, live: bool = False) -> DashboardSession:
    """The request's session; none raises _SignIn. Called by each page, not a FastAPI
    dependency: a bad query parameter is still answered before the session is looked up."""
    session = await run_in_threadpool(current_session, api.otp.store.dashboard, request)
    if session is None:
        raise _SignIn(live)
    return session


async def check_form_token(request: Request, session: DashboardSession) -> None:
    """A signed-in form's CSRF token must be its session's."""
    fields = await form(request)
    if not same_token(session.csrf, fields.get("csrf")):
        raise _Refused(403, "This form expired: reload the page", session)


async def _sign_in_first(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, _SignIn)
    return Response(status_code=401) if exc.live else to_signin()


async def _refused_page(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, _Refused)
    context = {"session": exc.session, "message": exc.message}
    return page(request, "error.html", context, exc.status)


# How a page that cannot be shown is answered (create_app adds them to the API's own).
EXCEPTION_HANDLERS: dict[Any, Callable[[Request, Exception], Awaitable[Response]]] = {
    _SignIn: _sign_in_first,
    _Refused: _refused_page,
}


def signin_form(
    request: Request, status: int = 200, workspace: str = "", user: str = "", error: str = ""
) -> Response:
    """The sign-in page, with its form's token in a cookie and in the form."""
    token = signin_token(request)
    context = {"session": None, "csrf": token, "workspace": workspace, "user": user}
    response = page(request, "signin.html", {**context, "error": error}, status)
    remember_signin(request, response, token)
    return response


@router.get("/signin")
async def signin_page(request: Request) -> Response:
    return signin_form(request)


@router.post("/signin")
async def signin(request: Request, api: Api) -> Response:
    fields = await form(request)
    if not same_token(request.cookies.get(SIGNIN_COOKIE), fields.get("csrf")):
        raise _Refused(403, "The sign-in form expired: reload the page", None)
    workspace, user = fields.get("workspace", "").strip(), fields.get("user", "").strip()
    settings = api.settings.dashboard
    store = api.otp.store.dashboard
    if await run_in_threadpool(store.signin_failures, workspace, user) >= MAX_SIGNIN_FAILURES:
        wait = f"Too many wrong sign-ins: try again in {LOCKOUT_SECONDS // 60} minutes."
        return signin_form(request, 429, workspace, user, wait)
    found = await run_in_threadpool(
        authenticate, settings, api.api_keys, workspace, user, fields.get("password", "")
    )
    if found is None:
        await run_in_threadpool(store.signin_failed, workspace, user, LOCKOUT_SECONDS)
        return signin_form(request, 401, workspace, user, "Wrong workspace, user or password.")
    await run_in_threadpool(store.signin_succeeded, workspace, user)
    response = RedirectResponse("/dashboard", status_code=303)
    await run_in_threadpool(open_session, store, settings, response, request, workspace, *found)
    return response


@router.post("/signout")
async def signout(request: Request, api: Api) -> Response:
    session = await session_of(api, request)
    await check_form_token(request, session)
    response = to_signin()
    await run_in_threadpool(close_session, api.otp.store.dashboard, session, response)
    return response


@router.get("", response_class=HTMLResponse)
async def home(request: Request, api: Api) -> Response:
    session = await session_of(api, request)
    store = api.otp.store.dashboard
    ids = await run_in_threadpool(store.recent, session.workspace)
    flows = await run_in_threadpool(flow_rows, store, ids, session.workspace)
    context = {"session": session, "query": "", "flows": flows, "heading": "Latest flows"}
    return page(request, "home.html", context)


def recipient_key(query: str) -> str | None:
    """The query as intake counts a recipient (E.164, a folded email address), or None."""
    if "@" in query:
        local, _, domain = query.strip().rpartition("@")
        return email_limit_key(query.strip()) if local and "." in domain else None
    digits = "".join(c for c in query if c.isdigit())
    if not 6 <= len(digits) <= 15:
        return None
    try:
        number = phonenumbers.parse("+" + digits)
    except phonenumbers.NumberParseException:
        return None
    return phone_limit_key(digits) if phonenumbers.is_valid_number(number) else None


@router.get("/search", response_class=HTMLResponse)
async def search(
    request: Request, api: Api, q: Annotated[str, Query(max_length=320)] = ""
) -> Response:
    session = await session_of(api, request)
    store = api.otp.store.dashboard
    query = q.strip()
    context: dict[str, Any] = {"session": session, "query": query, "flows": []}
    try:
        flow_id = str(uuid.UUID(query))
    except ValueError:
        flow_id = ""
    if flow_id:
        rows = await run_in_threadpool(flow_rows, store, [flow_id], session.workspace)
        if rows:
            return RedirectResponse(f"/dashboard/flows/{flow_id}", status_code=303)
        context["error"] = "No such flow in this workspace."
        return page(request, "home.html", context, 404)
    key = recipient_key(query)
    if key is None:
        context["error"] = (
            "That is neither a phone number with its country code, nor an email address, "
            "nor a request id."
        )
        return page(request, "home.html", context, 400)
    ids = await run_in_threadpool(store.find, session.workspace, key)
    flows = await run_in_threadpool(flow_rows, store, ids, session.workspace)
    if len(flows) == 1:
        return RedirectResponse(f"/dashboard/flows/{flows[0]['id']}", status_code=303)
    context.update(flows=flows, heading=f"{len(flows)} flows to this recipient")
    return page(request, "home.html", context)


async def _flow(
    request: Request, api: Services, flow_id: str, live: bool = False
) -> tuple[DashboardSession, Any]:
    session = await session_of(api, request, live)
    try:
        flow_id = str(uuid.UUID(flow_id))
    except ValueError as exc:
        raise _Refused(404, "No such flow", session) from exc
    view = await run_in_threadpool(flow_context, api.otp.store, flow_id, session.workspace)
    if view is None:  # another workspace's flows do not exist here
        raise _Refused(404, "No such flow", session)
    return session, view


@router.get("/flows/{flow_id}", response_class=HTMLResponse)
async def flow_page(request: Request, api: Api, flow_id: Annotated[str, Path()]) -> Response:
    session, view = await _flow(request, api, flow_id)
    context = {"session": session, "flow": view, "can_cancel": session.can_act}
    return page(request, "flow.html", context)


@router.get("/flows/{flow_id}/story", response_class=HTMLResponse)
async def flow_story(request: Request, api: Api, flow_id: Annotated[str, Path()]) -> Response:
    """The live part of a flow's page (htmx swaps it in every 2 s while the flow runs)."""
    session, view = await _flow(request, api, flow_id, live=True)
    return page(request, "_story.html", {"session": session, "flow": view})


@router.post("/flows/{flow_id}/cancel")
async def cancel(request: Request, api: Api, flow_id: Annotated[str, Path()]) -> Response:
    session, view = await _flow(request, api, flow_id)
    await check_form_token(request, session)
    if not session.can_act:
        raise _Refused(403, "Support accounts only read", session)
    await run_in_threadpool(api.otp.cancel, view["id"])
    return RedirectResponse(f"/dashboard/flows/{view['id']}", status_code=303)


@router.get("/analytics", response_class=HTMLResponse)
async def analytics(
    request: Request, api: Api, period: Annotated[str, Query(max_length=8)] = "day"
) -> Response:
    session = await session_of(api, request)
    if period not in PERIODS:
        raise _Refused(400, "The period is hour, day or week", session)
    context = await run_in_threadpool(
        analytics_context, api.otp, session.workspace, PERIODS[period]
    )
    periods = [("hour", "Last hour"), ("day", "Last day"), ("week", "Last week")]
    context.update(session=session, period=period, periods=periods)
    return page(request, "analytics.html", context)
