"""How settings read the comma separated values environment variables carry."""

from __future__ import annotations


def csv_items(text: str) -> list[str]:
    """``"a, b,,c"`` -> ``["a", "b", "c"]``."""
    return [part.strip() for part in text.split(",") if part.strip()]


def split_csv(value: object) -> object:
    """A validator's input: a string becomes its items; anything else is left to validation."""
    return csv_items(value) if isinstance(value, str) else value


def csv_pairs(text: str, sep: str, shape: str) -> dict[str, str]:
    """``"IN:price, GB:balance"`` -> ``{"IN": "price", "GB": "balance"}`` (``sep`` ":"), keys
    and values stripped; an item without ``sep`` or a key is an error that shows ``shape``."""
    pairs = {}
    for item in csv_items(text):
        key, found, value = item.partition(sep)
        if not found or not key.strip():
            raise ValueError(f"{item!r} is not {shape}")
        pairs[key.strip()] = value.strip()
    return pairs


def country_pairs(text: str, shape: str) -> dict[str, str]:
    """:func:`csv_pairs` keyed by ISO 3166 alpha-2 codes (``CC:value``), upper-cased."""
    pairs = csv_pairs(text, ":", shape)
    for country in pairs:
        if len(country) != 2:
            raise ValueError(f"{country!r} is no country code in {shape}")
    return {country.upper(): value for country, value in pairs.items()}
