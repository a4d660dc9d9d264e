"""The simulator's SMTP server for email, driven with smtplib over a real socket."""

from __future__ import annotations

import select
import smtplib
import socket
import subprocess
import sys
import uuid
from email.message import EmailMessage
from typing import Any

import httpx
import pytest

from otpflow.cli.stack import free_port
from otpflow.simulator.app import create_app


def mail(to: str = "user@example.com", **headers: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = "OTPflow <otp@otpflow.example>"
    msg["To"] = to
    msg["Subject"] = headers.get("subject", "Your code: 123456 ✓")
    msg["Message-ID"] = "<abc123@otpflow.example>"
    msg.set_content("Your code is 123456.\nIt expires in 5 minutes.")
    msg.add_alternative("<p>Your code is <b>123456</b></p>", subtype="html")
    return msg


@pytest.fixture
def smtp_sim(start_sim: Any) -> Any:
    sim = start_sim(smtp_port=0)
    assert isinstance(sim.app.state.sim.smtp_port, int)
    return sim


def smtp(sim: Any) -> smtplib.SMTP:
    return smtplib.SMTP("127.0.0.1", sim.app.state.sim.smtp_port, timeout=10)


def test_message_is_logged_with_subject_and_text(smtp_sim: Any) -> None:
    with smtp(smtp_sim) as client:
        refused = client.send_message(mail())
    assert refused == {}
    [row] = smtp_sim.requests(channel="email")
    assert row["path"] == "smtp"
    assert row["recipient"] == "user@example.com"
    assert row["status_code"] == 250
    assert uuid.UUID(row["request_id"]).version == 4
    assert row["body"] == {
        "mail_from": "otp@otpflow.example",
        "rcpt_tos": ["user@example.com"],
        "subject": "Your code: 123456 ✓",
        "message_id": "<abc123@otpflow.example>",
        "text": "Your code is 123456.\nIt expires in 5 minutes.",
    }
    assert row["headers"]["to"] == "user@example.com"
    # SMTP has no delivery reports
    assert smtp_sim.dlr(row["request_id"]).status_code == 409


def test_plain_sendmail_and_several_recipients(smtp_sim: Any) -> None:
    raw = "Subject: plain\r\n\r\nline one\r\nline two\r\n"
    with smtp(smtp_sim) as client:
        client.sendmail("a@example.com", ["first@example.com", "second@example.com"], raw)
    [row] = smtp_sim.requests()
    assert row["recipient"] == "first@example.com"
    assert row["body"]["rcpt_tos"] == ["first@example.com", "second@example.com"]
    assert row["body"]["subject"] == "plain"
    assert row["body"]["message_id"] is None
    assert row["body"]["text"] == "line one\nline two"


def test_reject_rule_gives_550(smtp_sim: Any) -> None:
    smtp_sim.rules({"channel": "email", "recipient": "blocked@example.com", "action": "reject"})
    with smtp(smtp_sim) as client, pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
        client.send_message(mail("blocked@example.com"))
    code, _ = refused.value.recipients["blocked@example.com"]
    assert code == 550
    [row] = smtp_sim.requests()
    assert (row["recipient"], row["status_code"], row["request_id"]) == (
        "blocked@example.com",
        550,
        None,
    )
    # other recipients are unaffected
    with smtp(smtp_sim) as client:
        assert client.send_message(mail()) == {}


def test_error_rule_gives_451(smtp_sim: Any) -> None:
    smtp_sim.rules({"channel": "email", "action": "error"})
    with smtp(smtp_sim) as client, pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
        client.send_message(mail())
    assert refused.value.recipients["user@example.com"][0] == 451


def test_partly_refused_message_goes_to_the_others(smtp_sim: Any) -> None:
    smtp_sim.rules({"channel": "*", "recipient": "no@example.com", "action": "reject"})
    with smtp(smtp_sim) as client:
        refused = client.sendmail("a@example.com", ["no@example.com", "yes@example.com"], "hi")
    assert refused["no@example.com"][0] == 550
    rows = smtp_sim.requests()
    assert [(r["recipient"], r["status_code"]) for r in rows] == [
        ("no@example.com", 550),
        ("yes@example.com", 250),
    ]
    assert rows[1]["body"]["rcpt_tos"] == ["yes@example.com"]


def test_no_smtp_unless_asked(sim: Any) -> None:
    assert sim.app.state.sim.smtp_port is None


def test_smtp_server_runs_only_while_the_app_runs(run_app: Any) -> None:
    app = create_app(smtp_port=0)
    with run_app(app):
        port = app.state.sim.smtp_port
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
            assert client.noop()[0] == 250
    assert app.state.sim.smtp_port is None
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()


def test_command_line_smtp_port(wait: Any) -> None:
    http_port, smtp_port = free_port(), free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "otpflow.simulator",
            "--port",
            str(http_port),
            "--smtp-port",
            str(smtp_port),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{http_port}"
    try:

        def healthy() -> bool:
            try:
                return httpx.get(f"{base}/healthz").status_code == 200
            except httpx.HTTPError:
                return proc.poll() is not None

        wait(healthy, timeout=15)
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        with smtplib.SMTP("127.0.0.1", smtp_port, timeout=10) as client:
            client.send_message(mail())
        [row] = httpx.get(f"{base}/_sim/requests", params={"channel": "email"}).json()["requests"]
        assert row["body"]["subject"] == "Your code: 123456 ✓"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.mark.parametrize(
    "command",
    [[sys.executable, "-m", "otpflow.simulator"], [sys.executable, "-m", "otpflow.cli.main"]],
    ids=["python -m otpflow.simulator", "otpflow simulator"],
)
def test_the_simulator_says_where_it_listens_and_how_to_steer_it(command: list[str]) -> None:
    http_port, smtp_port = free_port(), free_port()
    if command[-1] == "otpflow.cli.main":
        command = [*command, "simulator"]
    proc = subprocess.Popen(
        [*command, "--port", str(http_port), "--smtp-port", str(smtp_port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None
        ready, _, _ = select.select([proc.stderr], [], [], 15)
        line = proc.stderr.readline() if ready else ""
        # it says so once it listens: the port answers by then
        assert httpx.get(f"http://127.0.0.1:{http_port}/healthz").status_code == 200
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert line == (
        f"simulator listening on http://127.0.0.1:{http_port}, SMTP on 127.0.0.1:{smtp_port}; "
        "GET /_sim/requests shows what it received, POST /_sim/rules sets outcomes\n"
    )
