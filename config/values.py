"""How settings read the comma separated values environment variables carry."""

from __future__ import annotations


def csv_items(text: str) -> list[str]:
    """``"a, b,,c"`` -> ``["a", "b", "c"]``."""
    return [part.strip() for part in text.split(",") if part.strip()]


def split_csv(value: object) -> object:
    """A validator's input: a string becomes its items; anything else is left to validation."""
    return csv_items(value) if isinstance(value, str) else value
