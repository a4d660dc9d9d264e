"""The fraud guard: refuse SMS pumping (toll fraud) before a single paid message goes out.

Every phone recipient of a new flow is screened, in this order (README, Fraud):

1. **geo permissions** and **number types**, from the number alone (decided here, in Python);
2. the **safe list** exempts a number from every rule (the operator listed it); a request's
   ``trusted`` flag (the caller knows this person) from every rule below, not from 1;
3. an **existing block** of its prefix or country (``blocked``);
4. **conversion**: a prefix, then a country, whose codes are verified less often than
   ``min_conversion`` once ``min_volume`` of them had their chance is blocked
   (``low_conversion``). A code had its chance once it was verified or expired, unless its
   flow failed or was cancelled before anything was delivered (:data:`NO_CHANCE`); an exempt
   recipient's code never counts;
5. the **country's hourly cap** (``country_limit``, a refusal, not a block);
6. **prefix velocity**: the flow past ``prefix_limit`` to one prefix within its window blocks
   that prefix (``prefix_velocity``).

Steps 3-6 and the counting of an accepted flow run inside the store's submit script, one
atomic step with the recipient limits and the flow's creation, so parallel requests to one
prefix can never pass more than the limit, and a refused flow leaves nothing stored. What a
rule tripping does is the workspace's mode: refuse (``enforce``), pretend (``shadow``: the caller
is told yes, nothing is sent, the flow ends ``blocked``), or only record (``monitor``).

A *prefix* is the E.164 number without its last ``prefix_digits`` digits. Redis key names carry
an HMAC of it, never the digits; the block itself keeps them, for the operator who lifts it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from otpflow.config.fraud import FraudRules
from otpflow.flow.fields import NON_GEOGRAPHIC, PhoneFacts, phone_facts
from otpflow.flow.keyring import Keyring
from otpflow.flow.models import FlowRequest
from otpflow.flow.states import FlowStatus


class Reason(StrEnum):
    COUNTRY_NOT_ALLOWED = "country_not_allowed"
    NUMBER_TYPE = "number_type"
    COUNTRY_LIMIT = "country_limit"
    PREFIX_VELOCITY = "prefix_velocity"
    LOW_CONVERSION = "low_conversion"
    BLOCKED = "blocked"


# what a refused caller is told: the rule, never the number
MESSAGES = {
    Reason.COUNTRY_NOT_ALLOWED: "messages to this country are not allowed",
    Reason.NUMBER_TYPE: "this kind of number (premium rate, shared cost, ...) gets no messages",
    Reason.COUNTRY_LIMIT: "too many flows to this country this hour",
    Reason.PREFIX_VELOCITY: "too many flows to numbers like this one: its range is blocked",
    Reason.LOW_CONVERSION: "codes sent to numbers like this one are not being used: blocked",
    Reason.BLOCKED: "numbers like this one are blocked for now",
}

# one bucket of the conversion window: the window is summed over this many of them
CONVERSION_BUCKETS = 24

# A flow that ended so before any step was delivered never brought its person the code: its
# code had no chance and does not count for conversion (else a provider's outage would
# block the countries it serves).
NO_CHANCE = frozenset({FlowStatus.FAILED, FlowStatus.CANCELLED})

BLOCK_ID = re.compile(r"^(prefix-[0-9a-f]{16}|country-[A-Z0-9]{2,3})$")


def prefix_scope(keyring: Keyring, prefix: str) -> str:
    """A prefix as Redis keys and block ids name it: an HMAC, no digits."""
    return "prefix-" + keyring.recipient_id("fraud-prefix:" + prefix)[:16]


def country_scope(region: str) -> str:
    return "country-" + region


@dataclass(frozen=True)
class Screened:
    """One phone recipient as the submit script screens it."""

    facts: PhoneFacts
    prefix: str
    prefix_scope: str
    country_scope: str
    exempt: bool  # safe-listed or trusted: no rule applies, nothing counts to velocity
    static_reason: Reason | None  # refused by geo or number type, whatever the counts say
    country_limit: int  # flows per hour to its country (0: none)
    chance_seconds: int  # how long its code has to be verified (0: conversion ignores it)


@dataclass(frozen=True)
class Screening:
    """A new flow's fraud screening: the workspace's rules and each phone recipient."""

    rules: FraudRules
    recipients: tuple[Screened, ...]

    @property
    def bucket_seconds(self) -> int:
        return bucket_seconds(self.rules)


def bucket_seconds(rules: FraudRules) -> int:
    """One bucket of the conversion window (the screening and a verification count in the
    same buckets)."""
    return rules.conversion_window_seconds // CONVERSION_BUCKETS


def screening(keyring: Keyring, rules: FraudRules, request: FlowRequest) -> Screening | None:
    """The screening of a new flow, or None when there is nothing to screen (the guard is off,
    or the flow sends no paid message)."""
    numbers = request.phone_numbers()
    if rules.mode == "off" or not numbers:
        return None
    if request.otp is not None:
        chance = request.otp.ttl
    else:
        chance = rules.feedback_window_seconds if rules.feedback else 0
    recipients = []
    for number in numbers:
        facts = phone_facts(number)
        prefix = facts.prefix(rules.prefix_digits)
        safe = safe_listed(facts.e164, rules.safe_list)
        recipients.append(
            Screened(
                facts=facts,
                prefix=prefix,
                prefix_scope=prefix_scope(keyring, prefix),
                country_scope=country_scope(facts.region),
                exempt=safe or request.trusted,
                # the operator's policy: a caller's trust does not reach past it
                static_reason=None if safe else static_reason(facts, rules),
                country_limit=rules.country_hourly_limits.get(
                    facts.region, rules.country_hourly_limit
                ),
                chance_seconds=chance,
            )
        )
    return Screening(rules, tuple(recipients))


def safe_listed(e164: str, safe_list: list[str]) -> bool:
    """Whether a number is on the safe list: itself, or under a prefix ending in ``*``."""
    for entry in safe_list:
        entry = "+" + entry.removeprefix("+")
        if entry.endswith("*") and e164.startswith(entry[:-1]):
            return True
        if e164 == entry:
            return True
    return False


def static_reason(facts: PhoneFacts, rules: FraudRules) -> Reason | None:
    """What the number alone is refused for: its country, or its type."""
    if facts.region == NON_GEOGRAPHIC:
        if not rules.allow_non_geographic:
            return Reason.COUNTRY_NOT_ALLOWED
    elif facts.region in rules.denied_countries or (
        rules.allowed_countries and facts.region not in rules.allowed_countries
    ):
        return Reason.COUNTRY_NOT_ALLOWED
    if facts.number_type in rules.refused_number_types:
        return Reason.NUMBER_TYPE
    return None
