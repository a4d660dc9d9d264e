"""The SMTP adapter against a real SMTP server (aiosmtpd) on loopback."""

from __future__ import annotations

import datetime
import ipaddress
import ssl
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from email import message_from_bytes
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from pydantic import SecretStr

from otpflow.cli.stack import free_port
from otpflow.config.settings import SmtpSettings
from otpflow.providers.errors import (
    InvalidDlr,
    PermanentProviderError,
    ProviderAuthError,
    ProviderRejected,
    ProviderUnavailable,
)
from otpflow.providers.smtp import TOKEN_HEADER, SmtpProvider

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


# --- TLS and login ---------------------------------------------------------------------------

USERNAME, PASSWORD = "otp-mailer", "s3cret-pa55"


@dataclass(frozen=True)
class Certificate:
    """A private CA and a server certificate it signed for 127.0.0.1 and localhost."""

    ca_pem: str
    cert_file: str
    key_file: str

    def server_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert_file, self.key_file)
        return context

    def trusting_client(self) -> ssl.SSLContext:
        """The default context, verifying as ever, that also trusts this test's CA."""
        return ssl.create_default_context(cadata=self.ca_pem)


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> Certificate:
    now = datetime.datetime.now(datetime.UTC)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "OTPflow test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    server = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    folder = tmp_path_factory.mktemp("tls")
    cert_file, key_file = folder / "server.pem", folder / "server.key"
    cert_file.write_bytes(server.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    ca_pem = ca.public_bytes(serialization.Encoding.PEM).decode()
    return Certificate(ca_pem, str(cert_file), str(key_file))


class LoggingMailbox(Mailbox):
    """A mailbox that knows its one user, and records every login and whether it was in TLS."""

    def __init__(self) -> None:
        super().__init__()
        self.logins: list[tuple[str, bool]] = []

    def __call__(
        self, server: Any, session: Any, envelope: Any, mechanism: str, data: Any
    ) -> AuthResult:
        assert isinstance(data, LoginPassword)
        in_tls = server.transport.get_extra_info("ssl_object") is not None
        self.logins.append((data.password.decode(), in_tls))
        ok = (data.login.decode(), data.password.decode()) == (USERNAME, PASSWORD)
        # handled=False: aiosmtpd itself answers the failure with 535
        return AuthResult(success=ok, handled=False)


Serve = Callable[..., tuple[LoggingMailbox, int]]


@pytest.fixture
def serve() -> Iterator[Serve]:
    """Start an aiosmtpd server with the given options; stop it after the test."""
    controllers: list[Controller] = []

    def start(host: str = "127.0.0.1", **options: Any) -> tuple[LoggingMailbox, int]:
        box, port = LoggingMailbox(), free_port()
        controller = Controller(box, hostname=host, port=port, authenticator=box, **options)
        controller.start()
        controllers.append(controller)
        return box, port

    yield start
    for controller in controllers:
        controller.stop()


def with_login(port: int, **settings: Any) -> SmtpSettings:
    return SmtpSettings(
        port=port, username=USERNAME, password=SecretStr(PASSWORD), timeout_seconds=5, **settings
    )


def assert_clean(error: Exception) -> None:
    """No credential and no recipient in what is logged and shown."""
    for secret in (USERNAME, PASSWORD, "ana@example.com"):
        assert secret not in str(error)


def test_starttls_verifies_the_certificate_and_logs_in_inside_tls(
    serve: Serve, certificate: Certificate
) -> None:
    box, port = serve(tls_context=certificate.server_context(), require_starttls=True)
    provider = SmtpProvider(with_login(port, tls="starttls"), certificate.trusting_client())
    provider.send(EMAIL, CALLBACK)
    assert box.logins == [(PASSWORD, True)]
    assert len(box.messages) == 1


def test_starttls_refuses_an_untrusted_certificate(serve: Serve, certificate: Certificate) -> None:
    box, port = serve(tls_context=certificate.server_context(), require_starttls=True)
    # the default context: the system's trust store, which has never heard of this CA
    with pytest.raises(ProviderAuthError) as caught:
        SmtpProvider(with_login(port, tls="starttls")).send(EMAIL, CALLBACK)
    assert "certificate" in str(caught.value)
    assert isinstance(caught.value, PermanentProviderError)
    assert_clean(caught.value)
    assert (box.logins, box.messages) == ([], [])


def test_starttls_checks_the_host_name(serve: Serve, certificate: Certificate) -> None:
    # a trusted certificate, but for 127.0.0.1 and localhost, not for the address dialled
    box, port = serve(host="127.0.0.2", tls_context=certificate.server_context())
    settings = with_login(port, tls="starttls").model_copy(update={"host": "127.0.0.2"})
    with pytest.raises(ProviderAuthError) as caught:
        SmtpProvider(settings, certificate.trusting_client()).send(EMAIL, CALLBACK)
    assert "certificate" in str(caught.value)
    assert (box.logins, box.messages) == ([], [])


def test_starttls_asked_for_but_not_offered_never_falls_back_to_clear(serve: Serve) -> None:
    box, port = serve(auth_require_tls=False)
    with pytest.raises(ProviderAuthError) as caught:
        SmtpProvider(with_login(port, tls="starttls")).send(EMAIL, CALLBACK)
    assert "STARTTLS" in str(caught.value)
    assert (box.logins, box.messages) == ([], [])


def test_implicit_tls(serve: Serve, certificate: Certificate) -> None:
    # aiosmtpd offers AUTH only after its own STARTTLS unless told that TLS is already there
    box, port = serve(ssl_context=certificate.server_context(), auth_require_tls=False)
    provider = SmtpProvider(with_login(port, tls="implicit"), certificate.trusting_client())
    provider.send(EMAIL, CALLBACK)
    assert box.logins == [(PASSWORD, True)]
    assert len(box.messages) == 1
    with pytest.raises(ProviderAuthError) as caught:
        SmtpProvider(with_login(port, tls="implicit")).send(EMAIL, CALLBACK)
    assert "certificate" in str(caught.value)
    assert len(box.messages) == 1


def test_no_login_in_clear_by_default(serve: Serve) -> None:
    # a server that would take the password in clear: OTPflow must not offer it
    box, port = serve(auth_require_tls=False)
    with pytest.raises(ProviderAuthError) as caught:
        SmtpProvider(with_login(port)).send(EMAIL, CALLBACK)
    assert "TLS" in str(caught.value)
    assert_clean(caught.value)
    assert (box.logins, box.messages) == ([], [])


def test_login_in_clear_only_when_allowed_for_a_local_relay(serve: Serve) -> None:
    box, port = serve(auth_require_tls=False)
    SmtpProvider(with_login(port, allow_plaintext_auth=True)).send(EMAIL, CALLBACK)
    assert box.logins == [(PASSWORD, False)]
    assert len(box.messages) == 1


def test_a_relay_without_login_needs_no_tls(serve: Serve) -> None:
    """The default (tls none, no username): what the demo and compose stack use."""
    box, port = serve()
    assert SmtpSettings().tls == "none" and not SmtpSettings().allow_plaintext_auth
    SmtpProvider(SmtpSettings(port=port)).send(EMAIL, CALLBACK)
    assert (box.logins, len(box.messages)) == ([], 1)


def test_a_wrong_password_is_an_auth_error_without_the_password(
    serve: Serve, certificate: Certificate
) -> None:
    box, port = serve(tls_context=certificate.server_context())
    settings = with_login(port, tls="starttls").model_copy(
        update={"password": SecretStr("wrong-pa55")}
    )
    with pytest.raises(ProviderAuthError) as caught:
        SmtpProvider(settings, certificate.trusting_client()).send(EMAIL, CALLBACK)
    assert "wrong-pa55" not in str(caught.value)
    assert_clean(caught.value)
    assert box.messages == []


@pytest.mark.parametrize(("starttls", "tls"), [("true", "starttls"), ("false", "none")])
def test_the_former_starttls_setting_still_asks_for_starttls(starttls: str, tls: str) -> None:
    assert SmtpSettings.model_validate({"starttls": starttls}).tls == tls
    assert SmtpSettings.model_validate({"starttls": starttls, "tls": "implicit"}).tls == (
        "implicit"
    )
