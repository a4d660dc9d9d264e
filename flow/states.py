"""The flow and step state machines: every allowed (state, event) -> state, in one table.

The store's Lua transitions read these tables (rendered into the scripts at load time, with
the status sets, the delivery-report policy and the switch reasons below), and every status a
script writes goes through them (``lua/moves.lua``), so a transition that is not listed here
cannot happen, whoever asks for it and however often.
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
    BLOCKED = "blocked"  # the fraud guard, in shadow mode: accepted in words, never sent


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
    BLOCK = "block"  # the fraud guard refused it in shadow mode: stored, ended, never sent


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
    # as it is stored, before any step is sent (submit.lua)
    (FlowStatus.QUEUED, FlowEvent.BLOCK): FlowStatus.BLOCKED,
}

TERMINAL_FLOW = frozenset(
    {
        FlowStatus.DELIVERED,
        FlowStatus.FAILED,
        FlowStatus.CANCELLED,
        FlowStatus.VERIFIED,
        FlowStatus.BLOCKED,
    }
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
# A step in one of these has its message out, or going out: its deadline or a report ends it.
RUNNING_STEP = frozenset({StepStatus.SENDING, StepStatus.SENT})
# A step in one of these sent nothing: a report naming it is not its own.
UNSENT_STEP = frozenset({StepStatus.PENDING, StepStatus.SKIPPED})


def lua_table(name: str, transitions: dict[tuple[str, str], str]) -> str:
    """Render a transition table as a Lua table literal keyed by "state|event"."""
    entries = ", ".join(
        f'["{state}|{event}"] = "{target}"'
        for (state, event), target in sorted(transitions.items())
    )
    return f"local {name} = {{{entries}}}\n"


def lua_set(name: str, members: frozenset[str]) -> str:
    """Render a set of states as a Lua table literal: ``NAME[state]`` is true for a member."""
    entries = ", ".join(f'["{member}"] = true' for member in sorted(members))
    return f"local {name} = {{{entries}}}\n"


def lua_enum(name: str, members: type[StrEnum]) -> str:
    """Render an enum as a Lua table literal: ``NAME.MEMBER`` is the member's value."""
    entries = ", ".join(f'{member.name} = "{member.value}"' for member in members)
    return f"local {name} = {{{entries}}}\n"


class SwitchReason(StrEnum):
    """Why a step ended undelivered, so the flow moved to its next step (or, after the last,
    failed with it as its reason): on the ``channel_switch`` event, its webhook and metric."""

    TIMEOUT = "timeout"  # sent, and no final report within the step's timeout
    SEND_ERROR = "send_error"  # every provider refused the message or stayed unreachable
    SEND_LEASE_EXPIRED = "send_lease_expired"  # its send task vanished mid-send
    DLR_FAILED = "dlr_failed"
    DLR_UNDELIVERED = "dlr_undelivered"
    DLR_EXPIRED = "dlr_expired"
    DLR_REJECTED = "dlr_rejected"


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


# What a delivery report's status does to its step, one table for Python and the store's Lua
# (rendered by lua_dlr_policy): the step event it is (None: recorded only, it decides
# nothing), and the reason the flow gives when it switches channel on it (None: it never does).
DLR_POLICY: dict[DlrStatus, tuple[StepEvent | None, SwitchReason | None]] = {
    DlrStatus.ACCEPTED: (None, None),  # progress only
    DlrStatus.SENT: (None, None),
    DlrStatus.DELIVERED: (StepEvent.DLR_DELIVERED, None),
    DlrStatus.READ: (StepEvent.DLR_DELIVERED, None),  # read implies delivered
    DlrStatus.FAILED: (StepEvent.DLR_FAILED, SwitchReason.DLR_FAILED),
    DlrStatus.UNDELIVERED: (StepEvent.DLR_FAILED, SwitchReason.DLR_UNDELIVERED),
    DlrStatus.EXPIRED: (StepEvent.DLR_FAILED, SwitchReason.DLR_EXPIRED),
    DlrStatus.REJECTED: (StepEvent.DLR_FAILED, SwitchReason.DLR_REJECTED),
}


def lua_dlr_policy() -> str:
    """``DLR_POLICY[status]`` in Lua: ``{step event or '', switch reason or ''}``."""
    entries = ", ".join(
        f'["{status}"] = {{"{event or ""}", "{reason or ""}"}}'
        for status, (event, reason) in sorted(DLR_POLICY.items())
    )
    return f"local DLR_POLICY = {{{entries}}}\n"


class Kind(StrEnum):
    """What a store step did: the first field every Lua script returns, and an
    :class:`~otpflow.flow.outcomes.Outcome`'s ``kind``; and what a send task did (its result)."""

    # taking and sending a step
    CLAIMED = "claimed"
    ALREADY_CLAIMED = "already_claimed"
    NOT_CURRENT = "not_current"
    NOT_ENQUEUED = "not_enqueued"
    FLOW_ENDED = "flow_ended"
    SENT = "sent"
    # a step's outcome: the flow ends, moves on, or only records it
    DELIVERED = "delivered"
    SWITCHED = "switched"
    EXHAUSTED = "exhausted"
    RECORDED = "recorded"
    LATE = "late"
    DUPLICATE = "duplicate"
    TOO_MANY = "too_many"
    IGNORED = "ignored"
    ERROR = "error"
    CANCELLED = "cancelled"
    # a due timer
    RESEND = "resend"
    QUEUED = "queued"
    DISCARDED = "discarded"
    NOT_DUE = "not_due"
    MOVED_ON = "moved_on"
    # verifying a code
    COMPARE = "compare"
    VERIFIED = "verified"
    WRONG = "wrong"
    LOCKED = "locked"
    EXPIRED = "expired"
    ALREADY_VERIFIED = "already_verified"
    BLOCKED = "blocked"
    # a new flow's limits, its confirmation, an event
    OK = "ok"
    ACTIVE = "active"
    RATE_LIMITED = "rate_limited"
    MESSAGE_LIMITED = "message_limited"
    TOO_MANY_MESSAGES = "too_many_messages"
    VERIFY_BLOCKED = "verify_blocked"
    FRAUD_REFUSED = "fraud_refused"  # detail: the fraud guard's reason
    FRAUD_SHADOWED = "fraud_shadowed"  # stored as a blocked flow, never sent (shadow mode)
    CONFIRMED = "confirmed"
    ADDED = "added"
    # the flow is not (or no longer) in the store
    MISSING = "missing"
    # a send task's own results: its attempt is retried or fails over, or the step cannot go
    RETRYING = "retrying"
    FAILOVER = "failover"
    SEND_ERROR = "send_error"
    AMBIGUOUS = "ambiguous"  # the provider may have the message: never sent again
    NO_PROVIDER = "no_provider"
    CODE_EXPIRED = "code_expired"
    RENDER_FAILED = "render_failed"
