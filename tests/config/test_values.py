"""Comma separated settings: items, pairs, and pairs keyed by country."""

from __future__ import annotations

import pytest

from otpflow.config.fraud import FraudRules
from otpflow.config.values import country_pairs, csv_pairs


def test_pairs_are_stripped_and_need_their_separator_and_a_key() -> None:
    assert csv_pairs(" zixflow:sms = 0.006 ,, a=b=c", "=", "x=y") == {
        "zixflow:sms": "0.006",
        "a": "b=c",
    }
    for bad in ("zixflow", "=1"):
        with pytest.raises(ValueError, match="is not x=y"):
            csv_pairs(bad, "=", "x=y")


def test_country_pairs_take_two_letter_codes_upper_cased() -> None:
    assert country_pairs("in:price, GB:balance", "CC:policy") == {"IN": "price", "GB": "balance"}
    with pytest.raises(ValueError, match="no country code"):
        country_pairs("IND:price", "CC:policy")


@pytest.mark.parametrize("bad", ["GB500", "GBR:5", "GB:x", ":5"])
def test_a_country_cap_is_a_code_and_a_whole_number(bad: str) -> None:
    with pytest.raises(ValueError):
        FraudRules(country_hourly_limits=bad)  # type: ignore[arg-type]
    assert FraudRules(country_hourly_limits="gb:5, NG:50").country_hourly_limits == {  # type: ignore[arg-type]
        "GB": 5,
        "NG": 50,
    }
