"""SMTP for email. The server's acceptance (250 after DATA) counts as ``sent``; SMTP
itself gives no later report, so a step sent this way ends by its timeout unless a report
reaches OTPflow some other way.

TLS (``OTPFLOW_PROVIDERS__SMTP__TLS``): ``starttls`` upgrades the connection, ``implicit``
speaks TLS from the first byte (port 465), ``none`` sends in clear. Either TLS verifies the
server's certificate and host name against the system's trust store
(``ssl.create_default_context()``; ``SSL_CERT_FILE`` adds a private CA). A login never runs
in clear unless ``allow_plaintext_auth`` says the relay is trusted. A certificate that does not
verify, a server without STARTTLS, or a login refused for want of TLS is an authentication
error before anything is sent: permanent, so the channel's next provider may take the step.

One connection per message: OTP traffic is light per process, and a fresh connection never
carries a half-broken session into the next send.
"""

from __future__ import annotations

import smtplib
import ssl
from email.message import EmailMessage
from email.utils import make_msgid
from typing import Any

from otpflow.config.settings import SmtpSettings
from otpflow.flow.models import Step
from otpflow.flow.payloads import EmailPayload
from otpflow.flow.redact import mask
from otpflow.providers.base import Callback, DeliveryReport
from otpflow.providers.errors import (
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

    def __init__(self, settings: SmtpSettings, tls_context: ssl.SSLContext | None = None) -> None:
        self._settings = settings
        # verifies the certificate chain and the host name; a test may trust its own CA
        self._tls_context = tls_context or ssl.create_default_context()
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
        if settings.username and settings.tls == "none" and not settings.allow_plaintext_auth:
            raise ProviderAuthError(
                self.name,
                "login refused without TLS: set OTPFLOW_PROVIDERS__SMTP__TLS to starttls or "
                "implicit (or ALLOW_PLAINTEXT_AUTH for a trusted local relay)",
            )
        try:
            with self._connect() as server:
                if settings.tls == "starttls":
                    self._starttls(server)
                if settings.username:
                    server.login(settings.username, settings.password.get_secret_value())
                server.send_message(message)
        except ssl.SSLCertVerificationError as exc:
            # the server is not who it claims to be: retrying cannot help, and nothing was sent
            reason = mask(str(exc.verify_message))[:120]
            raise ProviderAuthError(self.name, f"server certificate not trusted: {reason}") from exc
        except ssl.SSLError as exc:
            # raised by the handshake only: a broken TLS session later is SMTPServerDisconnected
            reason = exc.reason or type(exc).__name__
            raise ProviderAuthError(self.name, f"TLS handshake failed: {reason}") from exc
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

    def _starttls(self, server: smtplib.SMTP) -> None:
        try:
            server.starttls(context=self._tls_context)
        except smtplib.SMTPNotSupportedError as exc:
            # never fall back to clear text where TLS was asked for
            raise ProviderAuthError(self.name, "server does not offer STARTTLS") from exc

    def _connect(self) -> smtplib.SMTP:
        settings = self._settings
        if settings.tls == "implicit":
            return smtplib.SMTP_SSL(
                settings.host,
                settings.port,
                timeout=settings.timeout_seconds,
                context=self._tls_context,
            )
        return smtplib.SMTP(settings.host, settings.port, timeout=settings.timeout_seconds)

    def for_caller(self, body: Any, post_back_data: str | None) -> Any:
        return body

    def parse_dlr(self, body: Any) -> list[DeliveryReport]:
        raise InvalidDlr("SMTP has no HTTP delivery reports")


def _by_code(provider: str, code: int, reason: str) -> Exception:
    """4xx is a temporary refusal (retry may help), 5xx a permanent one."""
    if 400 <= code < 500:
        return ProviderUnavailable(provider, f"temporarily refused ({code}): {reason}")
    return ProviderRejected(provider, f"refused ({code}): {reason}")
