"""How the API answers what went wrong: one JSON shape, ``{"success": false, "message": ...}``
with ``errors`` naming every bad field by its path, and never FastAPI's 422.

``EXCEPTION_HANDLERS`` maps each error a route may raise to that answer: the API's own
``ApiError``, FastAPI's parameter validation, the producers' errors (answered by their own
``error_reply``, so the API, Flask and Django answer alike), and Redis failing under a route
(a 503, as a producer's ``ServiceUnavailable``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import redis
from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response

from otpflow.flow.models import InvalidRequest
from otpflow.producers.errors import (
    STORE_UNREACHABLE,
    Conflict,
    FraudRefused,
    RateLimited,
    ServiceUnavailable,
    error_reply,
)


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


def invalid_field(field: str, message: str) -> ApiError:
    """The 400 for one bad field, named by its path."""
    return ApiError(400, "invalid request", [{"field": field, "message": message}])


async def api_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    body: dict[str, Any] = {"success": False, "message": exc.message, **exc.extra}
    if exc.errors is not None:
        body["errors"] = exc.errors
    headers = {"Retry-After": str(exc.retry_after)} if exc.retry_after else None
    return JSONResponse(body, status_code=exc.status, headers=headers)


async def bad_parameters(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = [
        {"field": ".".join(str(part) for part in error["loc"]), "message": error["msg"]}
        for error in exc.errors()
    ]
    return JSONResponse(
        {"success": False, "message": "invalid request", "errors": errors}, status_code=400
    )


async def producer_error(_: Request, exc: Exception) -> Response:
    body, status, headers = error_reply(exc)
    return JSONResponse(body, status_code=status, headers=headers or None)


async def store_unreachable(request: Request, exc: Exception) -> Response:
    """Redis failing under a route's own read is answered as a producer's: 503."""
    assert isinstance(exc, redis.RedisError)
    return await producer_error(request, ServiceUnavailable(STORE_UNREACHABLE))


EXCEPTION_HANDLERS: dict[Any, Callable[[Request, Exception], Awaitable[Response]]] = {
    ApiError: api_error,
    RequestValidationError: bad_parameters,
    InvalidRequest: producer_error,
    RateLimited: producer_error,
    Conflict: producer_error,
    FraudRefused: producer_error,
    ServiceUnavailable: producer_error,
    redis.RedisError: store_unreachable,
}
