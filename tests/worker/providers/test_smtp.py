"""The SMTP adapter against a real SMTP server (aiosmtpd) on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from email import message_from_bytes
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from otpflow.config.settings import SmtpSettings
from otpflow.worker.providers.errors import (
    InvalidDlr,
    ProviderRejected,
    ProviderUnavailable,
)
from otpflow.worker.providers.smtp import TOKEN_HEADER, SmtpProvider
from otpflow.worker.stack import free_port

from provider_contract import CALLBACK, step

EMAIL = step(
    "email",
    "",
    {
        "to": "ana@example.com",
        "from": "otp@acme.example",
        "subject": "Your code",
        "text": "Code 4821",
        "html": "<p>Code <b>4821</b></p>",
    },
)


class Mailbox:
    """Accepts mail, except for addresses the test says to refuse."""

    def __init__(self) -> None:
        self.messages: list[Any] = []
        self.refuse: dict[str, str] = {}

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: Any
    ) -> str:
        if address in self.refuse:
            return self.refuse[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(
            (envelope.mail_from, envelope.rcpt_tos, message_from_bytes(envelope.content))
        )
        return "250 Message accepted"


@pytest.fixture
def mailbox() -> Iterator[tuple[Mailbox, int]]:
    box, port = Mailbox(), free_port()
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    yield box, port
    controller.stop()


def test_message_reaches_the_server(mailbox: tuple[Mailbox, int]) -> None:
    box, port = mailbox
    message_id = SmtpProvider(SmtpSettings(port=port)).send(EMAIL, CALLBACK)
    ((mail_from, rcpt_tos, message),) = box.messages
    assert (mail_from, rcpt_tos) == ("otp@acme.example", ["ana@example.com"])
    assert message["Subject"] == "Your code" and message["Message-ID"] == message_id
    assert message[TOKEN_HEADER] == CALLBACK.data
    parts = {
        part.get_content_type(): part.get_payload(decode=True).decode()
        for part in message.walk()
        if not part.is_multipart()
    }
    assert parts["text/plain"].strip() == "Code 4821"
    assert "<b>4821</b>" in parts["text/html"]


@pytest.mark.parametrize(
    ("reply", "error"),
    [
        ("550 5.1.1 No such user", ProviderRejected),
        ("451 4.7.1 Try again later", ProviderUnavailable),
    ],
)
def test_refusals(mailbox: tuple[Mailbox, int], reply: str, error: type[Exception]) -> None:
    box, port = mailbox
    box.refuse["ana@example.com"] = reply
    with pytest.raises(error):
        SmtpProvider(SmtpSettings(port=port)).send(EMAIL, CALLBACK)


def test_unreachable_server_is_transient() -> None:
    with pytest.raises(ProviderUnavailable):
        SmtpProvider(SmtpSettings(port=free_port(), timeout_seconds=2)).send(EMAIL, CALLBACK)


def test_smtp_has_no_http_reports() -> None:
    with pytest.raises(InvalidDlr):
        SmtpProvider(SmtpSettings()).parse_dlr({"status": "delivered"})
