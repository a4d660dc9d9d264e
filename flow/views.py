"""A flow as it can be read: its steps' statuses, providers and times, and its timeline.
No recipient and no text: what any caller, the CLI or a support page may be shown."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from otpflow.flow.states import TERMINAL_FLOW


@dataclass(frozen=True)
class StepView:
    index: int
    channel: str
    message_type: str
    timeout: int
    status: str
    provider: str | None = None
    message_id: str | None = None
    attempts: int = 0
    claimed_at: float | None = None
    accepted_at: float | None = None
    deadline: float | None = None
    ended_at: float | None = None
    dlr: str | None = None
    dlr_at: float | None = None
    reason: str | None = None


@dataclass(frozen=True)
class FlowView:
    """A flow's state as stored: ids, statuses and times; no recipient and no text."""

    flow_id: str
    workspace: str
    status: str
    current: int
    created_at: float
    updated_at: float
    ended_at: float | None
    delivered_step: int | None
    reason: str | None
    steps: list[StepView]
    events: list[dict[str, Any]] = field(default_factory=list)

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL_FLOW

    @classmethod
    def read(cls, flow_id: str, raw: dict[bytes, bytes], events: list[bytes]) -> FlowView:
        """The view of a flow's hash and timeline as the store keeps them."""
        h = {k.decode(): v.decode() for k, v in raw.items()}
        steps = [
            StepView(
                index=i,
                channel=h[f"s{i}:channel"],
                message_type=h.get(f"s{i}:message_type", ""),
                timeout=int(h[f"s{i}:timeout"]),
                status=h[f"s{i}:status"],
                provider=h.get(f"s{i}:provider"),
                message_id=h.get(f"s{i}:message_id"),
                attempts=int(h.get(f"s{i}:attempts", 0)),
                claimed_at=_float(h.get(f"s{i}:claimed_at")),
                accepted_at=_float(h.get(f"s{i}:accepted_at")),
                deadline=_float(h.get(f"s{i}:deadline")),
                ended_at=_float(h.get(f"s{i}:ended_at")),
                dlr=h.get(f"s{i}:dlr"),
                dlr_at=_float(h.get(f"s{i}:dlr_at")),
                reason=h.get(f"s{i}:reason"),
            )
            for i in range(int(h["steps"]))
        ]
        delivered_step = h.get("delivered_step")
        return cls(
            flow_id=flow_id,
            workspace=h["workspace"],
            status=h["status"],
            current=int(h["current"]),
            created_at=float(h["created_at"]),
            updated_at=float(h["updated_at"]),
            ended_at=_float(h.get("ended_at")),
            delivered_step=int(delivered_step) if delivered_step is not None else None,
            reason=h.get("reason"),
            steps=steps,
            events=[json.loads(e) for e in events],
        )


def _float(value: str | None) -> float | None:
    return float(value) if value not in (None, "") else None
