"""Test doubles shared by unit tests: stand-ins only where no real part is needed."""

from __future__ import annotations

import threading
from typing import Any

from otpflow.flow.contract import NOTIFY_SWITCH, SEND_STEP, Tasks
from otpflow.flow.keyring import Keyring
from otpflow.flow.views import FlowView, StepView

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


# -- flow views to render (the CLI's and the timeline's tests) ------------------------------

T0 = 1_700_000_000.0
FLOW_ID = "3f2b8c1e-9a4d-4e7b-b1c2-5d6e7f809a1b"


def step_view(
    index: int,
    channel: str,
    status: str,
    message_type: str = "",
    timeout: int = 30,
    **fields: object,
) -> StepView:
    return StepView(
        index=index,
        channel=channel,
        message_type=message_type,
        timeout=timeout,
        status=status,
        **fields,
    )


def switched_flow() -> FlowView:
    return FlowView(
        flow_id=FLOW_ID,
        workspace="ws",
        status="delivered",
        current=1,
        created_at=T0,
        updated_at=T0 + 3.25,
        ended_at=T0 + 3.25,
        delivered_step=1,
        reason=None,
        steps=[
            step_view(
                0,
                "sms",
                "failed",
                timeout=10,
                provider="zixflow",
                accepted_at=T0 + 0.4,
                ended_at=T0 + 1.9,
                dlr="undelivered",
            ),
            step_view(
                1,
                "whatsapp",
                "delivered",
                timeout=10,
                provider="gateway",
                accepted_at=T0 + 2.0,
                ended_at=T0 + 3.25,
                dlr="delivered",
            ),
        ],
        events=[
            {"type": "flow_created", "steps": 2, "ts": T0},
            {"type": "sent", "step": 0, "channel": "sms", "provider": "zixflow", "ts": T0 + 0.4},
            {
                "type": "attempt_failed",
                "step": 0,
                "channel": "sms",
                "provider": "zixflow",
                "attempt": 1,
                "reason": "[Errno 111] [bold]refused[/bold]",
                "ts": T0 + 0.3,
            },
            {"type": "dlr", "step": 0, "channel": "sms", "status": "undelivered", "ts": T0 + 1.9},
            {
                "type": "channel_switch",
                "step": 0,
                "channel": "sms",
                "to_channel": "whatsapp",
                "status": "failed",
                "reason": "dlr_undelivered",
                "ts": T0 + 1.95,
            },
            {
                "type": "webhook",
                "event": "channel_switch",
                "step": 0,
                "result": "delivered",
                "code": 204,
                "attempt": 1,
                "ts": T0 + 2.1,
            },
            {"type": "flow_delivered", "step": 1, "ts": T0 + 3.25},
        ],
    )
