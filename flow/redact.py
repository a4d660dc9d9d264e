"""Masking for anything that may carry a phone number or an email address.

Text from outside (a provider's error message, a URL) can echo a recipient back; it passes
through :func:`mask` before it reaches a log line, an exception or the flow's timeline.
"""

from __future__ import annotations

import re

_EMAIL = re.compile(r"([A-Za-z0-9._%+-])[A-Za-z0-9._%+-]*@([A-Za-z0-9.-]+\.[A-Za-z]{2,})")
# a run of digits standing alone (not part of an id such as a UUID, or a decimal)
_DIGITS = re.compile(r"(?<![\w.-])\+?\d[\d \-]{5,}\d(?![\w-]|\.\d)")


def mask_phone(number: str) -> str:
    """Keep the last two digits: enough to tell numbers apart in a support chat."""
    digits = re.sub(r"\D", "", number)
    return "*" * max(len(digits) - 2, 0) + digits[-2:]


def mask(text: str) -> str:
    """Mask emails and runs of 7 or more digits (phone numbers) in free text."""
    text = _EMAIL.sub(lambda m: f"{m.group(1)}***@{m.group(2)}", text)
    return _DIGITS.sub(lambda m: mask_phone(m.group(0)), text)
