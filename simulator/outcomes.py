"""Outcome rules: what the simulator does with a message, per channel and per recipient."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

Channel = Literal["sms", "whatsapp"]
Action = Literal["deliver", "fail", "never", "reject", "error", "slow"]


class Rule(BaseModel):
    """One outcome rule; ``recipient=None`` and ``channel="*"`` are wildcards."""

    model_config = ConfigDict(extra="forbid")

    channel: Literal["sms", "whatsapp", "*"] = "*"
    recipient: str | None = None
    action: Action
    delay_ms: int | None = Field(default=None, ge=0)
    accept_delay_ms: int = Field(default=0, ge=0)
    status: str | None = Field(default=None, min_length=1)

    def postback_status(self) -> str | None:
        """Status the delivery postback carries, or None when no postback is sent."""
        if self.action in ("never", "reject", "error"):
            return None
        if self.status is not None:
            return self.status
        return "failed" if self.action == "fail" else "delivered"


DEFAULT_RULE = Rule(action="deliver")
_RULES = TypeAdapter(list[Rule])


def parse_rules(raw: Iterable[Any]) -> list[Rule]:
    """Validate rule dicts (raises ``pydantic.ValidationError``)."""
    return _RULES.validate_python(list(raw))


def pick_rule(rules: Sequence[Rule], channel: str, recipient: str | None) -> Rule:
    """Most specific rule: (channel, recipient) > (*, recipient) > (channel, -) > (*, -).

    Among equally specific rules the first one in the list wins; no match means "deliver".
    """
    keys: list[tuple[str, str | None]] = [(channel, None), ("*", None)]
    if recipient is not None:
        keys = [(channel, recipient), ("*", recipient), *keys]
    for want_channel, want_recipient in keys:
        for rule in rules:
            if rule.channel == want_channel and rule.recipient == want_recipient:
                return rule
    return DEFAULT_RULE
