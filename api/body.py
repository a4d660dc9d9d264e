"""Request bodies: a size cap in front of every route, and the JSON decoding every route that
takes a body shares (415 for another content type, 400 for invalid or too deeply nested JSON).
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from otpflow.api.errors import ApiError

MAX_BODY_BYTES = 64 * 1024
# Real bodies nest a handful of levels (a WhatsApp interactive body about eight); a limit far
# below the interpreter's recursion limit keeps every later recursive walk (validation,
# redaction, json.dumps) safe too.
MAX_JSON_DEPTH = 64


class BodyTooLarge(Exception):
    """The request body grew past the limit while it was being read."""


class LimitBodySize:
    """ASGI middleware, in front of every route: a body larger than ``max_bytes`` is answered
    413 unread when its Content-Length says so, and as soon as it grows past the limit when
    it comes in chunks, so no request can make the API hold more than the limit in memory.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.max_bytes:
            await self.too_large(scope, receive, send)
            return
        received = 0
        started = False

        async def capped_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise BodyTooLarge
            return message

        async def watched_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, capped_receive, watched_send)
        except BodyTooLarge:
            if started:
                raise
            await self.too_large(scope, receive, send)

    async def too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = {
            "success": False,
            "message": f"request body larger than the limit of {self.max_bytes} bytes",
            "max_bytes": self.max_bytes,
        }
        # closing the connection stops the client's upload too, rather than the server
        # reading (and dropping) the rest of it for the connection's next request
        response = JSONResponse(body, status_code=413, headers={"connection": "close"})
        await response(scope, receive, send)


def is_json(content_type: str | None) -> bool:
    """``application/json`` or a ``+json`` type, with any parameters (charset)."""
    media_type = (content_type or "").split(";", 1)[0].strip().lower()
    return media_type == "application/json" or (
        media_type.startswith("application/") and media_type.endswith("+json")
    )


def nested_too_deep(value: Any, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether decoded JSON nests deeper than ``limit`` (walked without recursion)."""
    pending: list[tuple[Any, int]] = [(value, 1)]
    while pending:
        node, depth = pending.pop()
        if isinstance(node, dict):
            node = list(node.values())
        if isinstance(node, list):
            if depth > limit:
                return True
            pending.extend((child, depth + 1) for child in node)
    return False


async def json_body(request: Request) -> Any:
    """The decoded JSON body of every route that takes one: 415 for any other content type
    (before reading it), 400 for invalid JSON or JSON nested too deeply. Its size is capped
    by LimitBodySize."""
    if not is_json(request.headers.get("content-type")):
        raise ApiError(
            415,
            "the body must be JSON: send it with content-type: application/json",
            [{"field": "content-type", "message": "must be application/json"}],
        )
    raw = await request.body()
    try:
        body = json.loads(raw)
        too_deep = nested_too_deep(body)
    except RecursionError:
        too_deep = True  # nested past the decoder's own limit
    except ValueError as exc:
        raise ApiError(
            400, "body is not valid JSON", [{"field": "body", "message": "invalid JSON"}]
        ) from exc
    if too_deep:
        raise ApiError(
            400,
            "body is not valid JSON",
            [{"field": "body", "message": f"nested deeper than {MAX_JSON_DEPTH} levels"}],
        )
    return body
