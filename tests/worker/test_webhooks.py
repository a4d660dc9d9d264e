"""Webhook delivery: outcomes counted per event and result (a MockTransport), and, against
real sockets, the destination rules (DNS answered once, connection pinned to the checked
address, NAT64/6to4 refused), the total deadline of a call and the Standard Webhooks headers."""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import re
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
import redis
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from standardwebhooks import Webhook

from otpflow.config.settings import Settings
from otpflow.flow import metrics
from otpflow.flow.signing import verify_webhook_signature, webhook_secret
from otpflow.flow.states import Kind
from otpflow.worker.runtime import Runtime
from otpflow.worker.webhooks import deliver, relay_dlr, webhook_client

from fakes import RecordingTasks
from harness import Receiver, ok, trickle

SECRET = "webhook-tests-secret-at-least-32-bytes!"
RECORD = {"type": "webhook", "event": "channel_switch", "step": 0}


def runtime(redis_client: redis.Redis, answers: list[int], max_attempts: int) -> Runtime:
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(answers.pop(0))

    rt = Runtime(
        Settings(secret=SECRET, allow_private_webhooks=True, webhook_max_attempts=max_attempts)
    )
    rt.__dict__["redis"] = redis_client
    rt.__dict__["webhook_http"] = httpx.Client(transport=httpx.MockTransport(answer))
    return rt


def test_a_report_to_relay_for_a_flow_that_is_gone_is_missing(redis_client: redis.Redis) -> None:
    rt = runtime(redis_client, [], max_attempts=1)
    assert relay_dlr(rt, RecordingTasks(), "gone", 0, 0, 1) is Kind.MISSING


def test_each_delivery_attempt_is_counted_by_its_result(redis_client: redis.Redis) -> None:
    rt = runtime(redis_client, [500, 200, 503, 503], max_attempts=2)
    retries: list[float] = []

    def post(attempt: int, url: str = "http://127.0.0.1:9/hook") -> str:
        return deliver(
            rt, "f1", url, {"a": 1}, "f1:switch:0", RECORD, attempt, retries.append, workspace="w"
        )

    assert [post(1), post(2), post(1), post(2)] == ["retrying", "delivered", "retrying", "gave_up"]
    assert post(1, url="ftp://example.org/") == "refused"
    relay = deliver(
        rt,
        "f1",
        "ftp://x/",
        {},
        "f1:dlr:0:0",
        {"type": "relay", "step": 0},
        1,
        retries.append,
        workspace="w",
    )
    assert relay == "refused"
    values = metrics.Metrics(redis_client).read()
    counted = {
        (labels["event"], labels["result"]): value
        for labels, value in metrics.series(values, "webhook_deliveries")
    }
    assert counted == {
        ("channel_switch", "retrying"): 2,
        ("channel_switch", "delivered"): 1,
        ("channel_switch", "gave_up"): 1,
        ("channel_switch", "refused"): 1,
        ("relay", "refused"): 1,
    }
    assert len(retries) == 2


# --- real sockets -----------------------------------------------------------------------------


@pytest.fixture
def receiver_factory() -> Iterator[Callable[[Callable[[socket.socket], None]], Receiver]]:
    made: list[Receiver] = []

    def make(serve: Callable[[socket.socket], None]) -> Receiver:
        made.append(Receiver(serve))
        return made[-1]

    yield make
    for receiver in made:
        receiver.close()


def real_runtime(redis_client: redis.Redis, allow_private: bool, timeout: float = 5.0) -> Runtime:
    rt = Runtime(
        Settings(
            secret=SECRET,
            allow_private_webhooks=allow_private,
            webhook_timeout_seconds=timeout,
            webhook_max_attempts=3,
        )
    )
    rt.__dict__["redis"] = redis_client
    rt.__dict__["store"] = Timeline(redis_client)
    return rt


def post(rt: Runtime, url: str, payload: Any = None, workspace: str = "w") -> str:
    return deliver(
        rt,
        "f1",
        url,
        {"a": 1} if payload is None else payload,
        "f1:switch:0",
        RECORD,
        1,
        lambda _delay: None,
        workspace=workspace,
    )


class Timeline:
    """Stands in for the flow store: what deliveries put on the flow's timeline (and the
    counters they add to)."""

    def __init__(self, redis_client: redis.Redis) -> None:
        self.events: list[dict[str, Any]] = []
        self.metrics = metrics.Metrics(redis_client)

    def add_event(self, flow_id: str, event: dict[str, Any]) -> None:
        self.events.append(event)


def last_event(rt: Runtime) -> dict[str, Any]:
    timeline = rt.store
    assert isinstance(timeline, Timeline)
    return timeline.events[-1]


class Resolver:
    """``socket.getaddrinfo`` answering a list of addresses per lookup of a name, counting the
    lookups."""

    def __init__(self, *answers: list[str]) -> None:
        self.answers = list(answers)
        self.calls = 0

    def __call__(self, host: str, port: Any, *args: Any, **kwargs: Any) -> list[Any]:
        try:  # an address is its own answer, as with the real resolver: no DNS asked
            addresses = [str(ipaddress.ip_address(host))]
        except ValueError:
            self.calls += 1
            addresses = self.answers[min(self.calls, len(self.answers)) - 1]
        infos = []
        for address in addresses:
            family = socket.AF_INET6 if ":" in address else socket.AF_INET
            sockaddr = (
                (address, int(port)) if family == socket.AF_INET else (address, int(port), 0, 0)
            )
            infos.append((family, socket.SOCK_STREAM, 6, "", sockaddr))
        return infos


def test_a_rebinding_host_is_resolved_once_and_never_reaches_the_second_answer(
    redis_client: redis.Redis,
    receiver_factory: Callable[..., Receiver],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    receiver = receiver_factory(ok)
    # public at the check, loopback (where the receiver listens) at a second lookup
    resolver = Resolver(["93.184.215.14"], ["127.0.0.1"])
    monkeypatch.setattr(socket, "getaddrinfo", resolver)
    rt = real_runtime(redis_client, allow_private=False, timeout=1.0)
    result = post(rt, f"http://rebind.example:{receiver.port}/hook")
    assert resolver.calls == 1, "the name is resolved once, the checked address used"
    assert receiver.requests == [], "the second answer (loopback) is never connected to"
    assert result == "retrying"


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "169.254.169.254",
        "10.1.2.3",
        "::1",
        "::ffff:169.254.169.254",  # IPv4-mapped
        "64:ff9b::7f00:1",  # NAT64 of 127.0.0.1
        "64:ff9b::a9fe:a9fe",  # NAT64 of 169.254.169.254
        "2002:7f00:1::1",  # 6to4 of 127.0.0.1
        "2002:a9fe:a9fe::1",  # 6to4 of 169.254.169.254
    ],
)
def test_a_host_with_any_private_address_is_refused(
    redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch, address: str
) -> None:
    monkeypatch.setattr(socket, "getaddrinfo", Resolver(["93.184.215.14", address]))
    rt = real_runtime(redis_client, allow_private=False)
    assert post(rt, "http://internal.example/hook") == "refused"
    assert "private" in last_event(rt)["reason"]


def test_the_pinned_connection_keeps_the_host_header(
    redis_client: redis.Redis,
    receiver_factory: Callable[..., Receiver],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    receiver = receiver_factory(ok)
    monkeypatch.setattr(socket, "getaddrinfo", Resolver(["127.0.0.1"]))
    rt = real_runtime(redis_client, allow_private=True)
    assert post(rt, f"http://hooks.example:{receiver.port}/hook") == "delivered"
    (request,) = receiver.requests
    assert f"host: hooks.example:{receiver.port}".encode() in request.lower()


def self_signed(hostname: str) -> tuple[bytes, bytes]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(hostname)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return (
        cert.public_bytes(serialization.Encoding.PEM),
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )


@pytest.mark.parametrize(
    ("certified", "delivered"), [("hooks.example", True), ("other.example", False)]
)
def test_tls_to_the_pinned_address_checks_the_certificate_for_the_host_name(
    tmp_path: Any,
    monkeypatch: pytest.MonkeyPatch,
    certified: str,
    delivered: bool,
) -> None:
    cert, key = self_signed(certified)
    (tmp_path / "cert.pem").write_bytes(cert)
    (tmp_path / "key.pem").write_bytes(key)
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    seen_sni: list[str | None] = []

    def remember_sni(_sock: Any, name: str | None, _context: Any) -> None:
        seen_sni.append(name)

    server_context.sni_callback = remember_sni
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    server_saw: list[str] = []

    def serve() -> None:
        # every connection, one after another: a stray one to this port (a port number an
        # earlier test's peer still dials) must not take the place of the client's
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return  # the test is over
            try:
                with server_context.wrap_socket(conn, server_side=True) as tls:
                    request = b""
                    while b"\r\n\r\n" not in request:
                        chunk = tls.recv(65536)
                        if not chunk:
                            server_saw.append("the connection closed before a request")
                            break
                        request += chunk
                    else:
                        # the body too: closing with unread bytes sends a reset, which can
                        # overtake the answer on its way (seen once in CI)
                        head, _, body = request.partition(b"\r\n\r\n")
                        length = re.search(rb"(?i)content-length:\s*(\d+)", head)
                        while length and len(body) < int(length.group(1)):
                            chunk = tls.recv(65536)
                            if not chunk:
                                break
                            body += chunk
                        tls.sendall(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n")
            except (ssl.SSLError, OSError) as exc:
                server_saw.append(repr(exc))  # the client refused the certificate, or a stray

    threading.Thread(target=serve, daemon=True).start()
    client_context = ssl.create_default_context(cafile=str(tmp_path / "cert.pem"))
    monkeypatch.setattr(socket, "getaddrinfo", Resolver(["127.0.0.1"]))
    client = webhook_client(allow_private=True, timeout=5.0, ssl_context=client_context)
    try:
        if delivered:
            try:
                response = client.post(f"https://hooks.example:{port}/hook", content=b"{}")
            except httpx.HTTPError as exc:
                pytest.fail(f"{exc!r}; the server saw {server_saw}")
            assert response.status_code == 204
        else:
            with pytest.raises(httpx.ConnectError, match="certificate"):
                client.post(f"https://hooks.example:{port}/hook", content=b"{}")
    finally:
        client.close()
        with contextlib.suppress(OSError):
            listener.shutdown(socket.SHUT_RDWR)
        listener.close()
    assert seen_sni == ["hooks.example"]


def test_a_receiver_trickling_its_reply_is_cut_at_the_deadline(
    redis_client: redis.Redis, receiver_factory: Callable[..., Receiver]
) -> None:
    # one byte every 0.3 s: each read is well inside a 1 s timeout, the whole reply takes 12 s
    reply = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
    receiver = receiver_factory(trickle(reply, every=0.3))
    rt = real_runtime(redis_client, allow_private=True, timeout=1.0)
    result = post(rt, f"http://127.0.0.1:{receiver.port}/hook")
    assert result == "retrying"
    assert last_event(rt)["reason"] == "timeout"


def test_the_reply_body_is_not_read(
    redis_client: redis.Redis, receiver_factory: Callable[..., Receiver]
) -> None:
    # a quick status line, then a body that would take 12 s; the status is all that counts
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 40\r\n\r\n"

    def serve(conn: socket.socket) -> None:
        conn.sendall(head)
        trickle(b"x" * 40, every=0.3)(conn)

    receiver = receiver_factory(serve)
    rt = real_runtime(redis_client, allow_private=True, timeout=5.0)
    assert post(rt, f"http://127.0.0.1:{receiver.port}/hook") == "delivered"
    assert receiver.closed_early.wait(5), "the connection is closed with the body unread"


def test_webhooks_carry_standard_webhooks_headers_signed_with_the_workspace_secret(
    redis_client: redis.Redis, receiver_factory: Callable[..., Receiver]
) -> None:
    receiver = receiver_factory(ok)
    rt = real_runtime(redis_client, allow_private=True)
    assert post(rt, f"http://127.0.0.1:{receiver.port}/hook", {"b": 2}, workspace="acme") == (
        "delivered"
    )
    head, _, body = receiver.requests[0].partition(b"\r\n\r\n")
    headers = dict(
        (name.decode().strip(), value.decode().strip())
        for name, _, value in (line.partition(b":") for line in head.split(b"\r\n")[1:])
    )
    lower = {name.lower(): value for name, value in headers.items()}
    assert lower["webhook-id"] == "f1:switch:0"
    assert lower["webhook-signature"].startswith("v1,")
    assert Webhook(webhook_secret(SECRET, "acme")).verify(body, headers) == {"b": 2}
    for wrong in (webhook_secret(SECRET, "other"), webhook_secret("another-" + SECRET, "acme")):
        with pytest.raises(Exception, match="signature"):
            Webhook(wrong).verify(body, headers)
    # the header receivers used before Standard Webhooks, with the same workspace secret
    assert verify_webhook_signature(
        webhook_secret(SECRET, "acme"), lower["x-otpflow-signature"], body
    )
    assert lower["x-otpflow-event-id"] == "f1:switch:0"
