"""Adaptive routing's settings (``OTPFLOW_ROUTING__*``). What routing does with them:
otpflow.flow.routing (the score) and otpflow.flow.router (the order of a channel's providers)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field, field_validator
from pydantic_settings import NoDecode

from otpflow.config.values import country_pairs, csv_pairs

RoutingMode = Literal["adaptive", "static"]
# quality: delivery first, then speed (and conversion where codes are verified);
# price: the cheapest of those that deliver; balance: some of each
RoutingPolicy = Literal["quality", "price", "balance"]
POLICIES: tuple[RoutingPolicy, ...] = ("quality", "price", "balance")
# a window is read as this many buckets: it slides by one bucket at a time
WINDOW_BUCKETS = 15


class RoutingSettings(BaseModel):
    """How a channel's providers are ordered for each message (README, Routing)."""

    model_config = {"extra": "forbid"}

    mode: RoutingMode = Field(
        default="adaptive",
        description="adaptive: order a channel's providers per message by their live score "
        "for the recipient's country; static: always the configured order",
    )
    exploration_share: float = Field(
        default=0.05,
        ge=0,
        le=0.5,
        description="share of messages sent first through a provider other than the "
        "preferred one, so a demoted provider is measured again",
    )
    window_seconds: int = Field(
        default=600,
        ge=15,
        le=24 * 3600,
        description="how far back the statistics reach (a sliding window of 15 buckets, "
        "each weighing half as much every fifth of the window back)",
    )
    policy: RoutingPolicy = Field(
        default="quality",
        description="what the score favours: quality (delivery, then speed), price or balance",
    )
    country_policies: Annotated[dict[str, RoutingPolicy], NoDecode] = Field(
        default_factory=dict,
        description="per country, CC:policy pairs comma separated (IN:price,GB:balance)",
    )
    prices: Annotated[dict[str, float], NoDecode] = Field(
        default_factory=dict,
        description="price per message, comma separated provider[:channel[:CC]]=price "
        "pairs (zixflow:sms=0.006,messageflow:sms:IN=0.002); the most specific wins",
    )
    switch_margin: float = Field(
        default=0.15,
        ge=0,
        le=1,
        description="how much better (a share of its score) another provider must score "
        "before it replaces the preferred one: traffic does not flap on noise",
    )
    refresh_seconds: float = Field(
        default=1.0,
        gt=0,
        le=60,
        description="how often each process reads the statistics it routes by",
    )
    breaker_error_share: float = Field(
        default=0.5,
        gt=0,
        le=1,
        description="share of a provider's sends on a channel refused or timed out that "
        "opens its circuit breaker",
    )
    breaker_min_volume: int = Field(
        default=10, ge=1, description="sends a breaker counts before it may open"
    )
    breaker_cooldown_seconds: float = Field(
        default=30.0,
        gt=0,
        description="how long an open breaker skips its provider before probes (doubling "
        "with each reopening, up to 8 times)",
    )
    breaker_probes: int = Field(
        default=3, ge=1, description="probe sends in a row that must be accepted to close it"
    )
    probe_share: float = Field(
        default=0.1,
        gt=0,
        le=1,
        description="share of messages a half-open provider is tried first for (probes)",
    )

    @field_validator("country_policies", mode="before")
    @classmethod
    def _parse_country_policies(cls, value: object) -> object:
        return country_pairs(value, "CC:policy (IN:price)") if isinstance(value, str) else value

    @field_validator("prices", mode="before")
    @classmethod
    def _parse_prices(cls, value: object) -> object:
        if not isinstance(value, str):
            return value
        prices = csv_pairs(value, "=", "provider[:channel[:CC]]=price")
        return {scope.lower(): price for scope, price in prices.items()}

    @field_validator("prices")
    @classmethod
    def _prices_positive(cls, value: dict[str, float]) -> dict[str, float]:
        for scope, price in value.items():
            if price <= 0:
                raise ValueError(f"the price of {scope} must be above 0")
        return value

    @property
    def bucket_seconds(self) -> int:
        """The width of one bucket of the statistics' window."""
        return max(1, self.window_seconds // WINDOW_BUCKETS)

    def policy_for(self, country: str) -> RoutingPolicy:
        return self.country_policies.get(country, self.policy)

    def price(self, provider: str, channel: str, country: str) -> float | None:
        """A message's price through a provider, the most specific setting; None if unset."""
        for scope in (f"{provider}:{channel}:{country.lower()}", f"{provider}:{channel}", provider):
            if scope in self.prices:
                return self.prices[scope]
        return None
