"""Outcome rule selection: the most specific rule wins."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from otpflow.simulator.outcomes import DEFAULT_RULE, parse_rules, pick_rule

RULES = parse_rules(
    [
        {"channel": "*", "recipient": None, "action": "never"},
        {"channel": "sms", "recipient": None, "action": "fail"},
        {"channel": "*", "recipient": "111111111", "action": "reject"},
        {"channel": "sms", "recipient": "111111111", "action": "error"},
        {"channel": "sms", "recipient": "222222222", "action": "slow"},
        {"channel": "sms", "recipient": "222222222", "action": "deliver"},
    ]
)


@pytest.mark.parametrize(
    ("channel", "recipient", "action"),
    [
        ("sms", "111111111", "error"),  # (channel, recipient)
        ("whatsapp", "111111111", "reject"),  # (*, recipient)
        ("sms", "333333333", "fail"),  # (channel, -)
        ("whatsapp", "333333333", "never"),  # (*, -)
        ("sms", "222222222", "slow"),  # first of equally specific rules
    ],
)
def test_most_specific_rule_wins(channel: str, recipient: str, action: str) -> None:
    assert pick_rule(RULES, channel, recipient).action == action


def test_default_is_deliver() -> None:
    assert pick_rule([], "sms", "111111111") is DEFAULT_RULE
    assert DEFAULT_RULE.action == "deliver"


@pytest.mark.parametrize(
    ("rule", "status"),
    [
        ({"action": "deliver"}, "delivered"),
        ({"action": "slow"}, "delivered"),
        ({"action": "fail"}, "failed"),
        ({"action": "fail", "status": "undelivered"}, "undelivered"),
        ({"action": "never"}, None),
        ({"action": "reject"}, None),
        ({"action": "error", "status": "delivered"}, None),
    ],
)
def test_postback_status(rule: dict[str, str], status: str | None) -> None:
    [parsed] = parse_rules([rule])
    assert parsed.postback_status() == status


@pytest.mark.parametrize(
    "rule",
    [
        {"action": "boom"},
        {"channel": "fax", "action": "deliver"},
        {"action": "deliver", "x": 1},
        {"action": "deliver", "delay_ms": -5},
        {},
    ],
)
def test_invalid_rules_rejected(rule: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        parse_rules([rule])
