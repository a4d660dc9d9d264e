from __future__ import annotations

import pytest

from otpflow.flow.redact import mask, mask_phone


@pytest.mark.parametrize(
    ("text", "hidden"),
    [
        ("Number 919876543210 is blocked", "919876543210"),
        ('{"recipient": "919876543210"}', "919876543210"),
        ("call +91 98765 43210.", "98765 43210"),
        ("to 44-7700-900123 now", "7700-900123"),
        ("mail john.doe@example.com today", "john.doe"),
    ],
)
def test_phone_numbers_and_emails_are_masked(text: str, hidden: str) -> None:
    assert hidden not in mask(text)


@pytest.mark.parametrize(
    "text",
    [
        "task check_step[0c3f5056-8b47-41aa-baf4-c119ddc61bea] succeeded",
        "succeeded in 0.0012345678s",
        "code 4821 and id 12-34",
        "12345678.5 seconds",
    ],
)
def test_ids_and_numbers_that_are_not_phones_stay(text: str) -> None:
    assert mask(text) == text


def test_mask_phone_keeps_the_last_two_digits() -> None:
    assert mask_phone("919876543210") == "**********10"
