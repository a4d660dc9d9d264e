"""Outcome rule selection: the most specific rule wins."""

from __future__ import annotations

import random

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


SHAPED = parse_rules(
    [
        {"channel": "sms", "action": "never"},
        {"channel": "sms", "prefix": "91", "action": "fail"},
        {"channel": "sms", "prefix": "9198", "action": "slow"},
        {"channel": "sms", "provider": "zixflow", "prefix": "91", "action": "deliver"},
        {"channel": "sms", "recipient": "919811111111", "action": "reject"},
    ]
)


@pytest.mark.parametrize(
    ("recipient", "provider", "action"),
    [
        ("919811111111", "zixflow", "reject"),  # a recipient's own rule first
        ("919822222222", "zixflow", "deliver"),  # then the provider's own prefix
        ("919822222222", "messageflow", "slow"),  # then the longest prefix
        ("917722222222", "messageflow", "fail"),
        ("447722222222", "zixflow", "never"),  # then the channel's rule
    ],
)
def test_prefix_and_provider_rules(recipient: str, provider: str, action: str) -> None:
    assert pick_rule(SHAPED, "sms", recipient, provider).action == action


def test_a_share_is_delivered_and_the_rest_fail_after_a_drawn_delay() -> None:
    [rule] = parse_rules(
        [{"action": "deliver", "deliver_share": 0.3, "delay_ms": 2000, "delay_ms_max": 8000}]
    )
    rng = random.Random(16)
    draws = [rule.drawn(rng, 200) for _ in range(2000)]
    delivered = sum(outcome == "delivered" for outcome, _ in draws) / len(draws)
    assert 0.27 < delivered < 0.33  # seeded: the same draws every run
    delays = [delay for _, delay in draws]
    assert min(delays) >= 2000 and max(delays) <= 8000 and len(set(delays)) > 100
    statuses = {rule.postback_status(drawn=outcome) for outcome, _ in draws}
    assert statuses == {"delivered", "failed"}
    # without a share or a range: every message delivered, after the fixed delay
    [plain] = parse_rules([{"action": "deliver", "delay_ms": 50}])
    assert {plain.drawn(rng, 200) for _ in range(50)} == {("delivered", 50)}


def test_a_lost_share_gets_no_report() -> None:
    [rule] = parse_rules([{"action": "deliver", "deliver_share": 0.3, "lost": True}])
    rng = random.Random(16)
    outcomes = [rule.drawn(rng, 200)[0] for _ in range(1000)]
    assert set(outcomes) == {"delivered", "lost"}
    statuses = {rule.postback_status(drawn=outcome) for outcome in outcomes}
    assert statuses == {"delivered", None}


def test_a_prefix_is_digits() -> None:
    with pytest.raises(ValidationError):
        parse_rules([{"action": "fail", "prefix": "+91"}])
