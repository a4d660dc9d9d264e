"""Outcome rules: what the simulator does with a message, per channel and per recipient."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

Channel = Literal["sms", "whatsapp", "rcs", "email", "voice", "telegram", "viber"]
Action = Literal["deliver", "fail", "never", "reject", "error", "slow"]


class Rule(BaseModel):
    """One outcome rule; ``recipient=None`` and ``channel="*"`` are wildcards."""

    model_config = ConfigDict(extra="forbid")

    channel: Channel | Literal["*"] = "*"
    recipient: str | None = None
    action: Action
    delay_ms: int | None = Field(default=None, ge=0)
    accept_delay_ms: int = Field(default=0, ge=0)
    status: str | None = Field(default=None, min_length=1)

    def postback_status(self, delivered: str = "delivered", failed: str = "failed") -> str | None:
        """Status the delivery postback carries, or None when no postback is sent.

        ``delivered`` and ``failed`` are the provider's own words (Zixflow's by default, e.g.
        MessageFlow says "Delivered"/"Undelivered"); a rule's ``status`` is used as given.
        """
        if self.action in ("never", "reject", "error"):
            return None
        if self.status is not None:
            return self.status
        return failed if self.action == "fail" else delivered


DEFAULT_RULE = Rule(action="deliver")
_RULES = TypeAdapter(list[Rule])


def parse_rules(raw: Iterable[Any]) -> list[Rule]:
    """Validate rule dicts (raises ``pydantic.ValidationError``)."""
    return _RULES.validate_python(list(raw))


class RuleBook:
    """Rules indexed by (channel, recipient), so a lookup costs the same for 5 or 5,000 rules.

    Most specific wins: (channel, recipient) > (*, recipient) > (channel, -) > (*, -); among
    equally specific rules the first in the list wins; no match means "deliver".
    """

    def __init__(self, rules: Sequence[Rule] = ()) -> None:
        self.rules = list(rules)
        self._index: dict[tuple[str, str | None], Rule] = {}
        for rule in self.rules:
            self._index.setdefault((rule.channel, rule.recipient), rule)

    def pick(self, channel: str, recipient: str | None) -> Rule:
        keys: list[tuple[str, str | None]] = [(channel, None), ("*", None)]
        if recipient is not None:
            keys = [(channel, recipient), ("*", recipient), *keys]
        for key in keys:
            if key in self._index:
                return self._index[key]
        return DEFAULT_RULE


def pick_rule(rules: Sequence[Rule], channel: str, recipient: str | None) -> Rule:
    """The rule :class:`RuleBook` picks for one message."""
    return RuleBook(rules).pick(channel, recipient)
