"""Dashboard sign-in: passwords hashed with scrypt, sessions kept in Redis behind an HttpOnly,
SameSite=Strict cookie (Secure over HTTPS), and a CSRF token per session that every form
carries. Sign-in itself is guarded by a double-submit token (a cookie and a form field)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass

from fastapi import Request, Response

from otpflow.config.dashboard import DashboardSettings, Role
from otpflow.flow.dashboard_store import DashboardStore

SESSION_COOKIE = "otpflow_session"
SIGNIN_COOKIE = "otpflow_signin"
# scrypt's cost (RFC 7914's interactive parameters): about 50 ms and 16 MB per check
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1


def hash_password(password: str) -> str:
    """``scrypt$N$r$p$salt$hash`` (base64): what a dashboard user's settings entry holds."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P)
    parts = (base64.b64encode(salt).decode(), base64.b64encode(digest).decode())
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${parts[0]}${parts[1]}"


def check_password(password: str, stored: str) -> bool:
    try:
        _, n, r, p, salt, digest = stored.split("$")
        expected = base64.b64decode(digest)
        typed = hashlib.scrypt(
            password.encode(), salt=base64.b64decode(salt), n=int(n), r=int(r), p=int(p)
        )
    except ValueError:
        return False
    return hmac.compare_digest(typed, expected)


@dataclass(frozen=True)
class DashboardSession:
    token_hash: str
    workspace: str
    user: str
    role: Role
    csrf: str

    @property
    def can_act(self) -> bool:
        """Support staff read; an admin may also cancel a flow."""
        return self.role == "admin"


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def authenticate(
    settings: DashboardSettings,
    api_keys: dict[str, str],
    workspace: str,
    user: str,
    password: str,
) -> tuple[str, Role] | None:
    """(user, role) if these credentials sign in to ``workspace``: a dashboard user and its
    password, or (no user) the workspace's API key, as its admin."""
    if not user:
        key = api_keys.get(workspace)
        if key is not None and hmac.compare_digest(key.encode(), password.encode()):
            return "api key", "admin"
        return None
    found = settings.user(workspace, user)
    if found is None:
        check_password(password, hash_password("x"))  # the same time as a wrong password
        return None
    return (found.name, found.role) if check_password(password, found.password) else None


def open_session(
    store: DashboardStore,
    settings: DashboardSettings,
    response: Response,
    request: Request,
    workspace: str,
    user: str,
    role: Role,
) -> None:
    token = secrets.token_urlsafe(32)
    fields = {"workspace": workspace, "user": user, "role": role, "csrf": secrets.token_urlsafe(24)}
    store.open_session(_token_hash(token), fields, settings.session_seconds)
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=settings.session_seconds,
        path="/dashboard",
        httponly=True,
        secure=request.url.scheme == "https",
        samesite="strict",
    )
    response.delete_cookie(SIGNIN_COOKIE, path="/dashboard")


def current_session(store: DashboardStore, request: Request) -> DashboardSession | None:
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        return None
    token_hash = _token_hash(token)
    fields = store.session(token_hash)
    if fields is None:
        return None
    return DashboardSession(
        token_hash, fields["workspace"], fields["user"], fields["role"], fields["csrf"]
    )


def close_session(store: DashboardStore, session: DashboardSession, response: Response) -> None:
    store.close_session(session.token_hash)
    response.delete_cookie(SESSION_COOKIE, path="/dashboard")


def signin_token(request: Request) -> str:
    """The sign-in form's token: the same value goes in a cookie and in the form."""
    return request.cookies.get(SIGNIN_COOKIE) or secrets.token_urlsafe(24)


def remember_signin(request: Request, response: Response, token: str) -> None:
    response.set_cookie(
        SIGNIN_COOKIE,
        token,
        max_age=3600,
        path="/dashboard",
        httponly=True,
        secure=request.url.scheme == "https",
        samesite="strict",
    )


def same_token(expected: str | None, given: str | None) -> bool:
    return bool(expected and given) and hmac.compare_digest(
        str(expected).encode(), str(given).encode()
    )
