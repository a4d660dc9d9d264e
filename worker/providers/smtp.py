"""Plain SMTP for email. The server's acceptance (250 after DATA) counts as ``sent``; SMTP
itself gives no later report, so a step sent this way ends by its timeout unless a report
reaches OTPflow some other way.

One connection per message: OTP traffic is light per process, and a fresh connection never
carries a half-broken session into the next send.
"""

from __future__ import annotations

import smtplib
from email.message import EmailMessage
from email.utils import make_msgid
from typing import Any

from otpflow.config.settings import SmtpSettings
from otpflow.flow.models import EmailPayload, Step
from otpflow.flow.redact import mask
from otpflow.worker.providers.base import Callback, DeliveryReport
from otpflow.worker.providers.errors import (
    AmbiguousSend,
    InvalidDlr,
    ProviderAuthError,
    ProviderRejected,
    ProviderUnavailable,
)

TOKEN_HEADER = "X-OTPflow-Token"


class SmtpProvider:
    name = "smtp"
    channels = frozenset({"email"})

    def __init__(self, settings: SmtpSettings) -> None:
        self._settings = settings
        self.accepted_is_delivered = settings.accepted_is_delivered

    @staticmethod
    def render(step: Step, callback: Callback) -> EmailMessage:
        data = step.data
        if not isinstance(data, EmailPayload):
            raise ProviderRejected("smtp", f"cannot send {step.channel}")
        message = EmailMessage()
        message["From"] = data.from_
        message["To"] = data.to
        message["Subject"] = data.subject
        if data.reply_to:
            message["Reply-To"] = data.reply_to
        message["Message-ID"] = make_msgid(domain=data.from_.rpartition("@")[2])
        message[TOKEN_HEADER] = callback.data  # lets a bounce be matched to its step
        message.set_content(data.text or "")
        if data.html:
            message.add_alternative(data.html, subtype="html")
        return message

    def send(self, step: Step, callback: Callback) -> str:
        message = self.render(step, callback)
        settings = self._settings
        try:
            with smtplib.SMTP(
                settings.host, settings.port, timeout=settings.timeout_seconds
            ) as server:
                if settings.starttls:
                    server.starttls()
                if settings.username:
                    server.login(settings.username, settings.password.get_secret_value())
                server.send_message(message)
        except smtplib.SMTPAuthenticationError as exc:
            raise ProviderAuthError(self.name, f"login refused ({exc.smtp_code})") from exc
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _ in exc.recipients.values()]
            raise _by_code(self.name, codes[0] if codes else 550, "recipient refused") from exc
        except (smtplib.SMTPSenderRefused, smtplib.SMTPDataError) as exc:
            raise _by_code(self.name, exc.smtp_code, mask(str(exc.smtp_error))[:120]) from exc
        except smtplib.SMTPServerDisconnected as exc:
            raise AmbiguousSend(self.name, "server disconnected during the send") from exc
        except (smtplib.SMTPException, OSError) as exc:
            raise ProviderUnavailable(
                self.name, f"cannot reach server: {type(exc).__name__}"
            ) from exc
        return str(message["Message-ID"])

    def for_caller(self, body: Any, post_back_data: str | None) -> Any:
        return body

    def parse_dlr(self, body: Any) -> list[DeliveryReport]:
        raise InvalidDlr("SMTP has no HTTP delivery reports")


def _by_code(provider: str, code: int, reason: str) -> Exception:
    """4xx is a temporary refusal (retry may help), 5xx a permanent one."""
    if 400 <= code < 500:
        return ProviderUnavailable(provider, f"temporarily refused ({code}): {reason}")
    return ProviderRejected(provider, f"refused ({code}): {reason}")
