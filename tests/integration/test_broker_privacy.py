"""Task messages carry ids only: no recipient, no message text ever reaches the broker."""

from __future__ import annotations

import base64
import binascii
import re
import threading

import pytest
import redis

from harness import BROKER_URL, System, recipient, sms_step, whatsapp_step

pytestmark = pytest.mark.integration

BASE64 = re.compile(rb"[A-Za-z0-9+/]{16,}={0,2}")


class BrokerMonitor:
    """Every command the broker's Redis database receives, via MONITOR, decoded."""

    def __init__(self) -> None:
        self.client = redis.Redis.from_url(BROKER_URL)
        self.db = self.client.connection_pool.connection_kwargs.get("db", 0)
        self.commands: list[bytes] = []
        self._monitor = self.client.monitor()
        self._monitor.__enter__()
        self._thread = threading.Thread(target=self._listen, daemon=True)
        self._thread.start()

    def _listen(self) -> None:
        try:
            for command in self._monitor.listen():
                if command["db"] == self.db:
                    self.commands.append(command["command"].encode())
        except (redis.ConnectionError, AttributeError, ValueError):
            pass

    def stop(self) -> None:
        self._monitor.connection.disconnect()
        self._thread.join(5)

    def decoded(self) -> list[bytes]:
        """Each command, plus every base64 blob in it decoded (kombu encodes task bodies)."""
        out = []
        for command in self.commands:
            out.append(command)
            for blob in BASE64.findall(command):
                try:
                    out.append(base64.b64decode(blob + b"=" * (-len(blob) % 4)))
                except (binascii.Error, ValueError):
                    continue
        return out


def test_broker_sees_ids_but_no_recipient_or_text(system: System) -> None:
    to, hook = recipient(), "/privacy"
    sms_text, whatsapp_text = "Your secret code is 907153", "WhatsApp secret code 907153"
    system.rules(
        {"channel": "sms", "recipient": to, "action": "fail", "delay_ms": 200},
        {"channel": "whatsapp", "recipient": to, "action": "deliver", "delay_ms": 200},
    )
    monitor = BrokerMonitor()
    try:
        request_id = system.start(
            {
                "messages": [sms_step(to, text=sms_text), whatsapp_step(to, text=whatsapp_text)],
                "webhookurl": system.webhooks.at(hook),
                "callbackData": "privacy-check",
            }
        )
        system.wait_terminal(request_id)
        system.wait(lambda: system.webhooks.for_path(hook), what="switch webhook")
    finally:
        monitor.stop()

    seen = b"\n".join(monitor.decoded())
    # the monitor saw the flow's tasks: otherwise the check below would prove nothing
    assert request_id.encode() in seen
    for task in (b"otpflow.send_step", b"otpflow.notify_switch"):
        assert task in seen, task
    for secret in (to, sms_text, whatsapp_text, "907153", to[-10:]):
        assert secret.encode() not in seen, f"{secret!r} reached the broker"
