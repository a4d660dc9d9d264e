"""The flow and step state machines: every allowed (state, event) -> state, in one table.

The store's Lua transitions read these tables (rendered into the scripts at load time), so a
transition that is not listed here cannot happen, whoever asks for it and however often.
"""

from __future__ import annotations

from enum import StrEnum


class FlowStatus(StrEnum):
    QUEUED = "queued"
    IN_PROGRESS = "in_progress"
    DELIVERED = "delivered"
    FAILED = "failed"
    CANCELLED = "cancelled"
    VERIFIED = "verified"


class StepStatus(StrEnum):
    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    DELIVERED = "delivered"
    FAILED = "failed"
    TIMEOUT = "timeout"
    ERROR = "error"
    SKIPPED = "skipped"


class StepEvent(StrEnum):
    CLAIM = "claim"  # a send task takes the step (at most once)
    ACCEPTED = "accepted"  # the provider accepted the message
    SEND_ERROR = "send_error"  # every provider refused or stayed unreachable
    DLR_DELIVERED = "dlr_delivered"
    DLR_FAILED = "dlr_failed"  # failed, undelivered, expired, rejected
    DEADLINE = "deadline"  # the timeout passed without a delivered report
    SKIP = "skip"  # the flow ended before this step was needed


class FlowEvent(StrEnum):
    START = "start"  # step 0 claimed
    DELIVER = "deliver"
    EXHAUST = "exhaust"  # the last step ended without delivery
    CANCEL = "cancel"
    VERIFY = "verify"  # the person entered the right code
    LOCK = "lock"  # too many wrong codes


STEP_TRANSITIONS: dict[tuple[StepStatus, StepEvent], StepStatus] = {
    (StepStatus.PENDING, StepEvent.CLAIM): StepStatus.SENDING,
    (StepStatus.PENDING, StepEvent.SKIP): StepStatus.SKIPPED,
    (StepStatus.SENDING, StepEvent.ACCEPTED): StepStatus.SENT,
    (StepStatus.SENDING, StepEvent.SEND_ERROR): StepStatus.ERROR,
    # A report can overtake the task that records the provider's acceptance.
    (StepStatus.SENDING, StepEvent.DLR_DELIVERED): StepStatus.DELIVERED,
    (StepStatus.SENDING, StepEvent.DLR_FAILED): StepStatus.FAILED,
    (StepStatus.SENT, StepEvent.DLR_DELIVERED): StepStatus.DELIVERED,
    (StepStatus.SENT, StepEvent.DLR_FAILED): StepStatus.FAILED,
    (StepStatus.SENT, StepEvent.DEADLINE): StepStatus.TIMEOUT,
    # The send task vanished mid-send (its lease ran out): the provider may or may not have the
    # message, so it is never sent again; the next channel covers it.
    (StepStatus.SENDING, StepEvent.DEADLINE): StepStatus.ERROR,
}

FLOW_TRANSITIONS: dict[tuple[FlowStatus, FlowEvent], FlowStatus] = {
    (FlowStatus.QUEUED, FlowEvent.START): FlowStatus.IN_PROGRESS,
    (FlowStatus.IN_PROGRESS, FlowEvent.DELIVER): FlowStatus.DELIVERED,
    (FlowStatus.IN_PROGRESS, FlowEvent.EXHAUST): FlowStatus.FAILED,
    (FlowStatus.QUEUED, FlowEvent.CANCEL): FlowStatus.CANCELLED,
    (FlowStatus.IN_PROGRESS, FlowEvent.CANCEL): FlowStatus.CANCELLED,
    (FlowStatus.QUEUED, FlowEvent.VERIFY): FlowStatus.VERIFIED,
    (FlowStatus.IN_PROGRESS, FlowEvent.VERIFY): FlowStatus.VERIFIED,
    # a delivered code can still be entered: verification is the real end of an OTP flow
    (FlowStatus.DELIVERED, FlowEvent.VERIFY): FlowStatus.VERIFIED,
    (FlowStatus.QUEUED, FlowEvent.LOCK): FlowStatus.FAILED,
    (FlowStatus.IN_PROGRESS, FlowEvent.LOCK): FlowStatus.FAILED,
}

TERMINAL_FLOW = frozenset(
    {FlowStatus.DELIVERED, FlowStatus.FAILED, FlowStatus.CANCELLED, FlowStatus.VERIFIED}
)
# A step in one of these no longer decides the flow; later reports are only recorded.
ENDED_STEP = frozenset(
    {
        StepStatus.DELIVERED,
        StepStatus.FAILED,
        StepStatus.TIMEOUT,
        StepStatus.ERROR,
        StepStatus.SKIPPED,
    }
)


def lua_table(name: str, transitions: dict[tuple[str, str], str]) -> str:
    """Render a transition table as a Lua table literal keyed by "state|event"."""
    entries = ", ".join(
        f'["{state}|{event}"] = "{target}"'
        for (state, event), target in sorted(transitions.items())
    )
    return f"local {name} = {{{entries}}}\n"


class DlrStatus(StrEnum):
    """Delivery report statuses, normalised from every provider's own words (SPEC §3)."""

    ACCEPTED = "accepted"
    SENT = "sent"
    DELIVERED = "delivered"
    READ = "read"
    FAILED = "failed"
    UNDELIVERED = "undelivered"
    EXPIRED = "expired"
    REJECTED = "rejected"


DLR_EVENTS: dict[DlrStatus, StepEvent | None] = {
    DlrStatus.ACCEPTED: None,  # progress only: recorded, decides nothing
    DlrStatus.SENT: None,
    DlrStatus.DELIVERED: StepEvent.DLR_DELIVERED,
    DlrStatus.READ: StepEvent.DLR_DELIVERED,  # read implies delivered
    DlrStatus.FAILED: StepEvent.DLR_FAILED,
    DlrStatus.UNDELIVERED: StepEvent.DLR_FAILED,
    DlrStatus.EXPIRED: StepEvent.DLR_FAILED,
    DlrStatus.REJECTED: StepEvent.DLR_FAILED,
}
