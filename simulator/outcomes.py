"""Outcome rules: what the simulator does with a message, per provider API, channel, recipient
or number prefix; a rule may deliver only a share of its messages, after a delay drawn from a
range ("zixflow delivers 30 % of +91 after 2-8 s"). Rules change at run time (POST
/_sim/rules), so a degradation can start mid-run."""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

Channel = Literal["sms", "whatsapp", "rcs", "email", "voice", "telegram", "viber"]
Provider = Literal["zixflow", "messageflow", "gateway", "smtp"]
Action = Literal["deliver", "fail", "never", "reject", "error", "slow"]


class Rule(BaseModel):
    """One outcome rule; ``recipient=None``, ``prefix=None``, ``channel="*"`` and
    ``provider="*"`` are wildcards."""

    model_config = ConfigDict(extra="forbid")

    channel: Channel | Literal["*"] = "*"
    provider: Provider | Literal["*"] = "*"
    recipient: str | None = None
    prefix: str | None = Field(default=None, pattern=r"^[0-9]+$")
    action: Action
    delay_ms: int | None = Field(default=None, ge=0)
    delay_ms_max: int | None = Field(default=None, ge=0)
    # "deliver" delivers this share of messages; the rest fail, or with ``lost`` vanish
    # without any report (a degraded route seldom says so)
    deliver_share: float | None = Field(default=None, ge=0, le=1)
    lost: bool = False
    accept_delay_ms: int = Field(default=0, ge=0)
    status: str | None = Field(default=None, min_length=1)

    def drawn(self, rng: random.Random, default_delay_ms: int) -> tuple[str, int]:
        """For one message: "delivered", "failed" or "lost" (by ``deliver_share`` and
        ``lost``), and its delay."""
        low = self.delay_ms if self.delay_ms is not None else default_delay_ms
        delay = rng.randint(low, max(low, self.delay_ms_max)) if self.delay_ms_max else low
        share = 1.0 if self.deliver_share is None else self.deliver_share
        if rng.random() < share:
            return "delivered", delay
        return ("lost" if self.lost else "failed"), delay

    def postback_status(
        self, delivered: str = "delivered", failed: str = "failed", drawn: str = "delivered"
    ) -> str | None:
        """Status the delivery postback carries, or None when no postback is sent.

        ``delivered`` and ``failed`` are the provider's own words (Zixflow's by default, e.g.
        MessageFlow says "Delivered"/"Undelivered"); a rule's ``status`` is used as given.
        """
        if self.action in ("never", "reject", "error") or drawn == "lost":
            return None
        if self.status is not None:
            return self.status
        return failed if self.action == "fail" or drawn == "failed" else delivered


DEFAULT_RULE = Rule(action="deliver")
_RULES = TypeAdapter(list[Rule])


def parse_rules(raw: Iterable[Any]) -> list[Rule]:
    """Validate rule dicts (raises ``pydantic.ValidationError``)."""
    return _RULES.validate_python(list(raw))


class RuleBook:
    """Rules indexed, so a lookup costs the same for 5 or 5,000 per-recipient rules.

    Most specific wins: a recipient's own rule, then the longest matching prefix, then a
    channel's rule; at each, a provider's own before any provider's, a channel's own before
    any channel's; among equals the first in the list wins; no match means "deliver".
    """

    def __init__(self, rules: Sequence[Rule] = ()) -> None:
        self.rules = list(rules)
        self._index: dict[tuple[str, str, str | None], Rule] = {}
        for rule in self.rules:
            if rule.prefix is None:
                self._index.setdefault((rule.provider, rule.channel, rule.recipient), rule)
        # few in practice: tried longest first
        self._prefixed = sorted(
            (rule for rule in self.rules if rule.prefix is not None),
            key=lambda rule: -len(rule.prefix or ""),
        )

    def pick(self, channel: str, recipient: str | None, provider: str = "*") -> Rule:
        scopes = [(p, c) for p in (provider, "*") for c in (channel, "*")]
        if recipient is not None:
            for p, c in scopes:
                if (p, c, recipient) in self._index:
                    return self._index[(p, c, recipient)]
            for p, c in scopes:
                for rule in self._prefixed:
                    if (rule.provider, rule.channel) == (p, c) and recipient.startswith(
                        rule.prefix or ""
                    ):
                        return rule
        for p, c in scopes:
            if (p, c, None) in self._index:
                return self._index[(p, c, None)]
        return DEFAULT_RULE


def pick_rule(
    rules: Sequence[Rule], channel: str, recipient: str | None, provider: str = "*"
) -> Rule:
    """The rule :class:`RuleBook` picks for one message."""
    return RuleBook(rules).pick(channel, recipient, provider)
