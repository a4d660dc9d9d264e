"""Plain SMTP server for email, run beside the HTTP APIs when ``create_app(smtp_port=...)``.

An ``aiosmtpd`` :class:`~aiosmtpd.controller.Controller` listens on ``127.0.0.1:smtp_port``
(``0`` picks a free port; the bound one is ``app.state.sim.smtp_port`` while it runs): no
AUTH, no STARTTLS, SMTPUTF8 allowed. The app's lifespan starts it and stops it at shutdown.

Rules apply per ``RCPT TO`` address on channel "email" (``reject`` -> ``550 5.1.1 Recipient
is blocked``, ``error`` -> ``451 4.3.0 Temporary failure, try again later``, ``slow`` delays
the RCPT reply by ``accept_delay_ms``; every other action accepts). A refused recipient is
logged with status_code 550/451 and request_id null; its body has the ``mail_from`` and
``rcpt_tos: [address]`` and null ``subject``, ``message_id`` and ``text``.

Every message accepted (``DATA`` -> ``250``) is logged once in the request log::

    {"path": "smtp", "channel": "email", "recipient": "<first accepted RCPT TO address>",
     "headers": {"<lower-case header name>": "<decoded value>", ...},   # the email's headers
     "body": {"mail_from": str, "rcpt_tos": [str, ...], "subject": str | null,
              "message_id": str | null,   # the Message-ID header, e.g. "<abc@host>"
              "text": str | null},        # the text/plain body, decoded, "\\n" line ends,
                                          # trailing newlines stripped
     "status_code": 250, "request_id": "<uuid4>"}

SMTP has no delivery reports: ``/_sim/dlr`` for such a request_id answers 409.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import time
import uuid
from collections.abc import Coroutine
from email.message import EmailMessage
from typing import Any, TypeVar

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from .core import Message, SimState

T = TypeVar("T")
PATH = "smtp"


def _no_dlr(status: str) -> None:
    return None


class SmtpSink:
    """aiosmtpd handler: applies rules at RCPT, logs messages at DATA.

    The hooks run on the controller's own event loop (its thread); the work that touches the
    simulator state runs on the app's loop, so the state has a single writer.
    """

    def __init__(self, state: SimState, app_loop: asyncio.AbstractEventLoop) -> None:
        self.state = state
        self.app_loop = app_loop

    async def _on_app_loop(self, coro: Coroutine[Any, Any, T]) -> T:
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, self.app_loop))

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        reply = await self._on_app_loop(self._rcpt(envelope.mail_from or "", address))
        if reply.startswith("250"):
            envelope.rcpt_tos.append(address)
        return reply

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or envelope.content or b""
        if isinstance(content, str):
            content = content.encode("utf-8", "surrogateescape")
        return await self._on_app_loop(
            self._data(envelope.mail_from or "", list(envelope.rcpt_tos), content)
        )

    async def _rcpt(self, mail_from: str, address: str) -> str:
        received_at = time.time()
        rule = self.state.rules.pick("email", address, "smtp")
        if rule.accept_delay_ms:
            await asyncio.sleep(rule.accept_delay_ms / 1000)
        if rule.action == "reject":
            code, reply = 550, "550 5.1.1 Recipient is blocked"
        elif rule.action == "error":
            code, reply = 451, "451 4.3.0 Temporary failure, try again later"
        else:
            return "250 OK"
        self.state.log_request(
            received_at=received_at,
            path=PATH,
            channel="email",
            recipient=address,
            headers={},
            body={
                "mail_from": mail_from,
                "rcpt_tos": [address],
                "subject": None,
                "message_id": None,
                "text": None,
            },
            status_code=code,
            request_id=None,
        )
        return reply

    async def _data(self, mail_from: str, rcpt_tos: list[str], content: bytes) -> str:
        parsed = email.message_from_bytes(content, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        request_id = str(uuid.uuid4())
        recipient = rcpt_tos[0] if rcpt_tos else None
        self.state.log_request(
            received_at=time.time(),
            path=PATH,
            channel="email",
            recipient=recipient,
            headers={name.lower(): str(value) for name, value in parsed.items()},
            body={
                "mail_from": mail_from,
                "rcpt_tos": rcpt_tos,
                "subject": _header(parsed, "subject"),
                "message_id": _header(parsed, "message-id"),
                "text": _plain_text(parsed),
            },
            status_code=250,
            request_id=request_id,
        )
        self.state.messages[request_id] = Message(
            request_id=request_id,
            channel="email",
            recipient=recipient or "",
            post_back_url=None,
            render=_no_dlr,
        )
        return "250 Message accepted for delivery"


def _header(msg: EmailMessage, name: str) -> str | None:
    value = msg.get(name)
    return None if value is None else str(value)


def _plain_text(msg: EmailMessage) -> str | None:
    part = msg.get_body(preferencelist=("plain",))
    if part is None:
        return None
    text = part.get_content()
    if not isinstance(text, str):
        return None
    return text.replace("\r\n", "\n").rstrip("\n")


class SimController(Controller):
    """A Controller that can bind port 0 and then knows the port it got."""

    def _trigger_server(self) -> None:
        if self.port == 0 and isinstance(self.server, asyncio.Server):
            self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()


def start_smtp(
    state: SimState, app_loop: asyncio.AbstractEventLoop, port: int, host: str = "127.0.0.1"
) -> Controller:
    """Start the SMTP server on ``host``:``port`` (blocking until it answers)."""
    controller = SimController(
        SmtpSink(state, app_loop),
        hostname=host,
        port=port,
        server_hostname="otpflow-simulator",
        ident="OTPflow provider simulator",
    )
    controller.start()
    state.smtp_port = controller.port
    return controller
