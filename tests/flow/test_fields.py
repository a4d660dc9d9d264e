"""A phone number's facts, as the fraud guard screens it."""

from __future__ import annotations

from otpflow.flow.fields import NON_GEOGRAPHIC, phone_facts


def test_a_number_is_parsed_into_e164_region_and_type() -> None:
    facts = phone_facts("447400123456")
    assert (facts.e164, facts.region, facts.number_type) == ("+447400123456", "GB", "mobile")
    assert phone_facts("870301234567").region == NON_GEOGRAPHIC


def test_a_prefix_keeps_a_digit_after_the_country_code() -> None:
    assert phone_facts("447400123456").prefix(3) == "+447400123"
    # Saint Helena's five-digit numbers: six digits cut would reach into +290
    assert phone_facts("29022001").prefix(6) == "+2902"
