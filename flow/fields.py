"""The field types a flow's payloads share: phone numbers (checked with ``phonenumbers``),
URLs (those OTPflow itself calls refused when private), short texts; how each pattern's
breach is told in words; and the keys abuse limits count a recipient by.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import phonenumbers
from pydantic import (
    AfterValidator,
    Field,
    HttpUrl,
    StringConstraints,
    TypeAdapter,
    ValidationInfo,
)
from pydantic_core import PydanticCustomError

from otpflow.flow.destinations import DestinationRefused, refuse_obviously_private

_HTTP_URL = TypeAdapter(HttpUrl)


def _http_url(value: str) -> str:
    return str(_HTTP_URL.validate_python(value))


PHONE_PATTERN = r"^[1-9][0-9]{7,14}$"
# One line of text: no control character (C0, DEL, C1: CR, LF, \x0b, \x85, ...) and no
# Unicode line or paragraph separator, any of which a mail library may take for a line break.
ONE_LINE_PATTERN = r"^[^\x00-\x1f\x7f-\x9f\u2028\u2029]*$"
LANGUAGE_PATTERN = r"^[a-z]{2,3}-[A-Z]{2}$"
CODE_PATTERN = r"^([0-9]{4,10}|\{\{code\}\})$"
# What a value breaking a pattern is told, in words (never the regular expression itself).
PATTERN_MESSAGES = {
    PHONE_PATTERN: "must be digits only, with the country code and no + or spaces "
    "(8 to 15 digits, e.g. 919876543210)",
    ONE_LINE_PATTERN: "must be one line (no line breaks or control characters)",
    LANGUAGE_PATTERN: "must be a language and region like en-GB",
    CODE_PATTERN: "must be 4 to 10 digits, or {{code}} for a code OTPflow makes",
}


def _valid_phone_number(value: str) -> str:
    # the digits must make a real number once read with their country code: "9800000001" is
    # not India's 98000 00001 without its 91, and would dodge that number's limits
    try:
        number = phonenumbers.parse("+" + value)
    except phonenumbers.NumberParseException:
        number = None
    if number is None or not phonenumbers.is_valid_number(number):
        raise PydanticCustomError(
            "phone_number",
            "is not a valid phone number: the country code, then the number "
            "(digits only, e.g. 919876543210)",
        )
    return value


PhoneNumber = Annotated[
    str,
    StringConstraints(pattern=PHONE_PATTERN),
    AfterValidator(_valid_phone_number),
    Field(description="Country code and number, digits only, no '+' (seed 001): 919876543210."),
]


def phone_limit_key(recipient: str) -> str:
    """A valid recipient number in E.164 (``+919876543210``), as abuse limits count it."""
    number = phonenumbers.parse("+" + recipient)
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


# phonenumbers' PhoneNumberType values by their names, as settings spell them
_NUMBER_TYPES = {
    getattr(phonenumbers.PhoneNumberType, name): name.lower()
    for name in dir(phonenumbers.PhoneNumberType)
    if name.isupper()
}


def masked(address: str) -> str:
    """A recipient as lists may show it: a phone number's country code and last four digits
    (``+91 •••••• 3210``), an email address's first letter and domain (``a•••@example.org``)."""
    if "@" in address:
        local, _, domain = address.rpartition("@")
        return f"{local[:1]}•••@{domain}"
    number = phonenumbers.parse("+" + address)
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    code = str(number.country_code)
    hidden = len(e164) - 1 - len(code) - 4
    return f"+{code} {'•' * max(hidden, 0)} {e164[-4:]}"


# the country of a recipient that has none (an email address): ISO 3166's "unknown"
NO_COUNTRY = "ZZ"
# the region phonenumbers gives a number of no country (+800, +870, +881, +882, ...)
NON_GEOGRAPHIC = "001"


@dataclass(frozen=True)
class PhoneFacts:
    """What the fraud guard knows of a number: E.164, its region (ISO 3166 alpha-2, or
    ``001`` for a number of no country) and its type (``mobile``, ``premium_rate``, ...)."""

    e164: str
    region: str
    number_type: str
    country_code: int

    def prefix(self, digits: int) -> str:
        """The number without its last ``digits`` digits (``+4479460001`` for 3), keeping at
        least one digit after the country code: a short number's prefix never spans countries."""
        shortest = 1 + len(str(self.country_code)) + 1
        return self.e164[: max(len(self.e164) - digits, shortest)]


def phone_facts(recipient: str) -> PhoneFacts:
    """The facts of a valid recipient (digits with the country code, no ``+``)."""
    number = phonenumbers.parse("+" + recipient)
    return PhoneFacts(
        e164=phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164),
        region=phonenumbers.region_code_for_number(number) or NON_GEOGRAPHIC,
        number_type=_NUMBER_TYPES.get(phonenumbers.number_type(number), "unknown"),
        country_code=number.country_code or 0,
    )


def email_limit_key(address: str) -> str:
    """An email address as abuse limits count it: case folded, and without a ``+tag`` in the
    local part, so ``Victim+1@Example.org`` counts as ``victim@example.org``. For the limits
    only: the message still goes to the address as given."""
    local, _, domain = address.rpartition("@")
    return f"{local.split('+', 1)[0]}@{domain}".casefold()


Url = Annotated[str, StringConstraints(max_length=2048), AfterValidator(_http_url)]

# FlowRequest.parse's validation context: may a caller's URL name a private address?
ALLOW_PRIVATE_DESTINATIONS = "allow_private_destinations"


def _caller_destination(value: str, info: ValidationInfo) -> str:
    # OTPflow itself calls these URLs: refuse an obviously private host at intake (400), not
    # only at delivery (otpflow.flow.destinations), unless the intake allows private ones
    if (info.context or {}).get(ALLOW_PRIVATE_DESTINATIONS, True):
        return value
    try:
        return refuse_obviously_private(value)
    except DestinationRefused as exc:
        raise PydanticCustomError("private_destination", str(exc)) from None


# a URL OTPflow posts to (webhookurl, post_back_url), as opposed to one a provider fetches
CallerUrl = Annotated[Url, AfterValidator(_caller_destination)]
ShortText = Annotated[str, StringConstraints(min_length=1, max_length=256)]
PostBackData = Annotated[str, StringConstraints(max_length=256)]
