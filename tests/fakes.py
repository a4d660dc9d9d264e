"""Test doubles shared by unit tests: stand-ins only where no real part is needed."""

from __future__ import annotations

import threading
from typing import Any

from otpflow.config.celery import NOTIFY_SWITCH, SEND_STEP
from otpflow.flow.contract import Tasks
from otpflow.flow.keyring import Keyring

# the store's keys in unit tests (a real deployment derives them from OTPFLOW_SECRET)
TEST_KEYRING = Keyring.from_secret("unit-test-secret-of-at-least-32-bytes")


class RecordingTasks(Tasks):
    """The task contract with every enqueue recorded instead of published, as
    ``(kind, counters, delay)``."""

    def __init__(self) -> None:
        super().__init__(celery=None, store=None, lease_seconds=30)  # type: ignore[arg-type]
        self.calls: list[tuple[str, tuple[Any, ...], float]] = []
        self.provider_attempts: list[int] = []
        self._lock = threading.Lock()

    def submit(self, name: str, args: list[Any], delay: float = 0) -> None:
        with self._lock:
            if name == SEND_STEP:
                self.calls.append(("send", tuple(args[1:4]), delay))
                self.provider_attempts.append(args[4])
            elif name == NOTIFY_SWITCH:
                self.calls.append(("notify", tuple(args[1:3]), delay))
            else:
                self.calls.append((name.removeprefix("otpflow."), tuple(args[1:]), delay))

    def publish(self, name: str, args: list[Any]) -> None:
        self.submit(name, args)

    def ran(self, name: str, args: list[Any]) -> None:
        pass
