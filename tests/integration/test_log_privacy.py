"""No recipient, email address, code or message text in any log the product's processes write.

Flows run end to end on the live system at INFO level (SMS fails, WhatsApp is delivered; SMS and
WhatsApp fail, email is delivered over SMTP; and a request refused as invalid), then every log
file the stack wrote is read whole: the API's and each worker's. The simulator's log is
left out: it stands for the providers, which are given the recipient and the text.
"""

from __future__ import annotations

import random
import re
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from harness import HEADERS, System, recipient, sms_step, whatsapp_step

pytestmark = pytest.mark.integration

PROVIDER_LOGS = {"simulator.log"}  # the providers' side: it may log what it receives
FLUSH_SECONDS = 1.0


def email_step(address: str, subject: str, text: str, timeout: int = 30) -> dict[str, Any]:
    return {
        "channel": "email",
        "timeout": timeout,
        "messageType": "",
        "data": {"to": address, "from": "otp@acme.example", "subject": subject, "text": text},
    }


def email_address() -> str:
    return f"privacy.{random.randint(10_000_000, 99_999_999)}@example.org"


def product_logs(log_dir: Path) -> dict[str, list[str]]:
    """Every log file the stack wrote but the simulator's, as lines, by file name."""
    return {
        path.name: path.read_text(encoding="utf-8", errors="replace").splitlines()
        for path in sorted(log_dir.glob("*.log"))
        if path.name not in PROVIDER_LOGS
    }


def standalone(value: str) -> re.Pattern[str]:
    """`value` not inside a longer run of letters or digits (a code inside an id is no leak)."""
    return re.compile(rf"(?<![0-9A-Za-z]){re.escape(value)}(?![0-9A-Za-z])")


def leaks(logs: dict[str, list[str]], secrets: dict[str, re.Pattern[str]]) -> list[str]:
    found = []
    for name, lines in logs.items():
        for number, line in enumerate(lines, 1):
            for what, pattern in secrets.items():
                if pattern.search(line):
                    found.append(f"{name}:{number}: {what}: {line[:400]}")
    return found


def test_logs_carry_no_recipient_address_code_or_text(system: System) -> None:
    log_dir = system.stack.log_dir
    assert log_dir is not None, "the stack was started without a log directory"
    code = str(random.randint(100_000, 999_999))
    text = f"Your code is {code}"
    subject = f"Sign-in code {code}"
    # each flow has its own number and address: one flow may run per recipient at a time
    to, to_mail, to_refused = recipient(), recipient(), recipient()
    address, address_mail = email_address(), email_address()
    hook = f"/privacy-{uuid.uuid4().hex}"  # the caller's own URL: no personal data in it
    system.rules(
        {"channel": "sms", "recipient": to, "action": "fail", "delay_ms": 100},
        {"channel": "whatsapp", "recipient": to, "action": "deliver", "delay_ms": 100},
        {"channel": "sms", "recipient": to_mail, "action": "fail", "delay_ms": 100},
        {"channel": "whatsapp", "recipient": to_mail, "action": "fail", "delay_ms": 100},
    )
    whatsapp_delivers = system.start(
        {
            "messages": [
                sms_step(to, text=text),
                whatsapp_step(to, text=text),
                email_step(address, subject, text),
            ],
            "webhookurl": system.webhooks.at(hook),
            "callbackData": "privacy-whatsapp",
        }
    )
    email_delivers = system.start(
        {
            "messages": [
                sms_step(to_mail, text=text),
                whatsapp_step(to_mail, text=text),
                email_step(address_mail, subject, text),
            ],
            "webhookurl": system.webhooks.at(hook),
            "callbackData": "privacy-email",
        }
    )
    # a refused request carries the same kind of data through the API's error path
    refused = system.post_flow({"messages": [sms_step(to_refused, timeout=-1, text=text)]})
    assert refused.status_code == 400, refused.text

    first = system.wait_terminal(whatsapp_delivers)
    assert first.status == "delivered" and first.delivered_step == 1
    assert [s.status for s in first.steps] == ["failed", "delivered", "skipped"]
    second = system.wait_terminal(email_delivers)
    assert second.status == "delivered" and second.delivered_step == 2
    assert [s.status for s in second.steps] == ["failed", "failed", "delivered"]
    assert second.steps[2].provider == "smtp"
    # three switches in all: sms -> whatsapp twice, whatsapp -> email once
    system.wait(lambda: len(system.webhooks.for_path(hook)) >= 3, what="the switch webhooks")
    for request_id in (whatsapp_delivers, email_delivers):
        reply = system.http.get(f"{system.stack.api_url}/v1/otpflow/{request_id}", headers=HEADERS)
        assert reply.status_code == 200, reply.text
    time.sleep(FLUSH_SECONDS)  # let every process write out what it logged

    logs = product_logs(log_dir)
    names = set(logs)
    workers = sorted(name for name in names if name.startswith("worker"))
    assert "api.log" in names, f"missing logs in {log_dir}: {sorted(names)}"
    assert workers, f"no worker log in {log_dir}: {sorted(names)}"
    for name in workers:
        assert logs[name], f"{name} is empty: the processes logged nothing to read"
    # the logs read are this run's: the workers logged the tasks of both flows (by id)
    for request_id in (whatsapp_delivers, email_delivers):
        assert any(request_id in line for name in workers for line in logs[name]), (
            f"no worker log line names flow {request_id}: the logs read are not this run's"
        )

    secrets = {
        **{
            f"recipient {number}{part}": standalone(digits)
            for number in (to, to_mail, to_refused)
            for part, digits in (("", number), (" (national number)", number[2:]))
        },
        **{
            f"email {what} of {email}": re.compile(re.escape(value), re.IGNORECASE)
            for email in (address, address_mail)
            for what, value in (("address", email), ("local part", email.split("@")[0]))
        },
        "code": standalone(code),
        "message text": re.compile(re.escape(text)),
        "email subject": re.compile(re.escape(subject)),
    }
    found = leaks(logs, secrets)
    assert not found, f"personal data in the logs under {log_dir}:\n" + "\n".join(found)
