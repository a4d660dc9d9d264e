"""Simulator state shared by every provider: rules, request log, accepted messages, postbacks.

Each provider module turns an accepted message into a :class:`Message` whose ``render`` builds
that provider's own DLR body for a status; :meth:`SimState.accept` stores it (so ``/_sim/dlr``
can post for it later) and schedules the postback the matching rule asks for. Every postback,
whatever its provider, goes through :meth:`SimState.schedule`: it is recorded in the postback
log (``/_sim/postbacks``) and tried again after 1, 2, 4, ... seconds when it meets a connection
error or a 5xx.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
from starlette.requests import Request

from .outcomes import Rule, RuleBook

POSTBACK_RETRY_SECONDS = 1.0  # first retry of a failed postback; doubles each time
# Postbacks in flight at once. httpcore's pool scans its whole queue and every connection
# (asking each whether it expired) for every request it assigns, so many queued postbacks or
# many connections cost quadratic CPU; waiting on a semaphore first keeps both short. Ten
# keep up with hundreds of reports a second on loopback.
POSTBACK_CONCURRENCY = 10


@dataclass(frozen=True)
class Message:
    """An accepted message, kept so /_sim/dlr can post for it later.

    ``render(status)`` is the JSON body of a DLR with that status in the provider's own format;
    ``delivered``/``failed`` are the provider's words for the two outcomes of a rule.
    """

    request_id: str
    channel: str
    recipient: str
    post_back_url: str | None
    render: Callable[[str], Any]
    delivered: str = "delivered"
    failed: str = "failed"


class SimState:
    """Mutable simulator state: rules, request log, postback log, pending postbacks."""

    def __init__(
        self,
        api_key: str,
        workspace_id: str,
        default_delay_ms: int,
        rules: list[Rule],
        postback_attempts: int = 4,
        messageflow_application_key: str = "mf-app-key",
        messageflow_authorization: str = "mf-token",
        gateway_auth: str = "gw-auth",
    ) -> None:
        self.api_key = api_key
        self.postback_attempts = postback_attempts
        self.workspace_id = workspace_id
        self.messageflow_application_key = messageflow_application_key
        self.messageflow_authorization = messageflow_authorization
        self.gateway_auth = gateway_auth
        self.default_delay_ms = default_delay_ms
        self.rules = RuleBook(rules)
        # draws each message's outcome and delay where a rule gives a share or a range
        self.rng = random.Random()
        self.requests: list[dict[str, Any]] = []
        self.postbacks: list[dict[str, Any]] = []
        self.messages: dict[str, Message] = {}
        self.tasks: set[asyncio.Task[None]] = set()
        self.client: httpx.AsyncClient | None = None
        self.postback_slots = asyncio.Semaphore(POSTBACK_CONCURRENCY)
        self.smtp_port: int | None = None  # the bound SMTP port while the SMTP server runs
        self._seq = itertools.count(1)
        # the JSON gateway's integer message ids; never reset, so they stay unique
        self.gateway_ids = itertools.count(700_000_001)

    def reset(self) -> None:
        """Forget requests, postbacks, messages and rules; cancel pending postbacks."""
        for task in self.tasks:
            task.cancel()
        self.tasks.clear()
        self.requests.clear()
        self.postbacks.clear()
        self.messages.clear()
        self.rules = RuleBook()

    def log_request(
        self,
        *,
        received_at: float,
        path: str,
        channel: str | None,
        recipient: str | None,
        headers: dict[str, str],
        body: Any,
        status_code: int,
        request_id: str | None,
    ) -> None:
        """Append one entry to the request log."""
        self.requests.append(
            {
                "seq": next(self._seq),
                "received_at": received_at,
                "path": path,
                "channel": channel,
                "recipient": recipient,
                "headers": headers,
                "body": body,
                "status_code": status_code,
                "request_id": request_id,
            }
        )

    def accept(self, msg: Message, rule: Rule) -> None:
        """Remember an accepted message and schedule the postback ``rule`` asks for."""
        self.messages[msg.request_id] = msg
        drawn, delay = rule.drawn(self.rng, self.default_delay_ms)
        status = rule.postback_status(msg.delivered, msg.failed, drawn)
        if status is not None:
            self.schedule(msg, status, delay)

    def schedule(self, msg: Message, status: str, delay_ms: int) -> None:
        """Post a delivery postback for ``msg`` after ``delay_ms``, without blocking."""
        if not msg.post_back_url:
            return
        task = asyncio.create_task(self._post_later(msg, msg.post_back_url, status, delay_ms))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _post_later(self, msg: Message, url: str, status: str, delay_ms: int) -> None:
        await asyncio.sleep(delay_ms / 1000)
        body = msg.render(status)
        # like real providers: a postback that meets an error or a 5xx is tried again later
        for attempt in range(1, self.postback_attempts + 1):
            record: dict[str, Any] = {
                "sent_at": time.time(),
                "url": url,
                "request_id": msg.request_id,
                "body": body,
                "attempt": attempt,
                "response_status": None,
                "error": None,
            }
            try:
                if self.client is None:
                    raise RuntimeError("HTTP client not started (app lifespan not running)")
                async with self.postback_slots:
                    # when the request leaves, not when it began to wait for a slot
                    record["sent_at"] = time.time()
                    resp = await self.client.post(url, json=body)
                record["response_status"] = resp.status_code
            except Exception as exc:  # recorded; retried below
                record["error"] = f"{type(exc).__name__}: {exc}"
            self.postbacks.append(record)
            if record["error"] is None and record["response_status"] < 500:
                return
            await asyncio.sleep(POSTBACK_RETRY_SECONDS * 2 ** (attempt - 1))


def utc_now() -> str:
    """Current time as ISO 8601 UTC with a ``Z`` suffix."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def sim_state(request: Request) -> SimState:
    """The :class:`SimState` of the app serving ``request``."""
    state: SimState = request.app.state.sim
    return state


async def read_json(request: Request) -> Any:
    """The request body parsed as JSON, or None when it is not JSON."""
    try:
        return json.loads(await request.body())
    except ValueError:
        return None
