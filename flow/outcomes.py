"""What the store's transitions answer: an :class:`Outcome` (``kind`` names what happened),
a claim's request and code, a report's kept raw body, and the entries of the timers index."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from otpflow.flow.models import FlowRequest
from otpflow.flow.states import Kind


class FlowDiscarded(LookupError):
    """A producer confirmed a flow that the timer loop had already discarded, unconfirmed
    for longer than the grace period: it was never accepted, and nothing of it is sent."""


@dataclass(frozen=True)
class Outcome:
    """What a transition did: ``kind`` names it, ``detail`` carries its one value;
    ``notify`` says a switch has a caller webhook to tell."""

    kind: Kind
    detail: str = ""
    notify: bool = False

    @property
    def number(self) -> float:
        return float(self.detail)


@dataclass(frozen=True)
class Claim(Outcome):
    """A claim's outcome; a ``claimed`` one carries what the send needs."""

    request: FlowRequest | None = None
    code: str | None = None
    # the order of the step's providers, if an earlier attempt chose it
    route: tuple[str, ...] = ()


@dataclass(frozen=True)
class Recorded(Outcome):
    """A delivery report's outcome; ``kept``: the index of its raw report, kept for the relay
    task, or None."""

    kept: int | None = None


@dataclass(frozen=True)
class Timer:
    """One entry of the timers index: a step to look at (``flow_id``, ``step``), or a task to
    publish (``task``, ``args``: ids and counters only, like every task's arguments)."""

    member: str
    flow_id: str = ""
    step: int = 0
    task: str = ""
    args: tuple[Any, ...] = ()

    @classmethod
    def parse(cls, member: str) -> Timer:
        """The entry as written by the store; anything else (a stray write) as neither."""
        try:
            if member.startswith("["):
                task, args = json.loads(member)
                return cls(member, task=str(task), args=tuple(args))
            flow_id, _, step = member.rpartition(":")
            return cls(member, flow_id=flow_id, step=int(step))
        except (ValueError, TypeError):
            return cls(member)

    @property
    def is_step(self) -> bool:
        return bool(self.flow_id)


def text(item: bytes | str | int) -> str:
    """One field of what a script answered, as text."""
    return item.decode() if isinstance(item, bytes) else str(item)
