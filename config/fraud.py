"""The fraud guard's settings (``OTPFLOW_FRAUD__*``): its rules, one set for every workspace,
and the fields some workspaces set otherwise. What the rules do: otpflow.flow.fraud."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import NoDecode

from otpflow.config.values import country_pairs, split_csv

FraudMode = Literal["enforce", "shadow", "monitor", "off"]
# phonenumbers' PhoneNumberType names (lower case) a paid message is refused to by default:
# numbers that earn their owner money per message or call, or that no person carries
DEFAULT_REFUSED_NUMBER_TYPES = (
    "premium_rate",
    "shared_cost",
    "uan",
    "personal_number",
    "pager",
    "voicemail",
    "toll_free",
)
NUMBER_TYPES = (
    "fixed_line",
    "mobile",
    "fixed_line_or_mobile",
    "toll_free",
    "premium_rate",
    "shared_cost",
    "voip",
    "personal_number",
    "pager",
    "uan",
    "voicemail",
    "unknown",
)


class FraudRules(BaseModel):
    """The fraud guard's rules (README, Fraud): one set for every workspace, each field
    overridable per workspace through ``OTPFLOW_FRAUD__WORKSPACES``."""

    model_config = {"extra": "forbid"}

    mode: FraudMode = Field(
        default="enforce",
        description="enforce: refuse (403); shadow: answer 200 and send nothing; monitor: send "
        "and record what would have been refused; off: no checks",
    )
    allowed_countries: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="ISO 3166 alpha-2 codes a phone recipient may be in, comma separated "
        "(empty: every country)",
    )
    denied_countries: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="ISO 3166 alpha-2 codes refused, comma separated"
    )
    allow_non_geographic: bool = Field(
        default=False,
        description="whether numbers of no country get paid messages: +800/+808 freephone, "
        "+870 Inmarsat, +881 satellite phones, +882/+883 international networks, +979 premium "
        "rate (phonenumbers' region 001), ranges pumping favours and few users carry",
    )
    refused_number_types: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: list(DEFAULT_REFUSED_NUMBER_TYPES),
        description="number types (phonenumbers' names) no paid message goes to",
    )
    country_hourly_limit: int = Field(
        default=0, ge=0, description="flows per country per hour per workspace (0: no limit)"
    )
    country_hourly_limits: Annotated[dict[str, int], NoDecode] = Field(
        default_factory=dict,
        description="per country, CC:limit pairs comma separated (GB:500,NG:50): beats "
        "country_hourly_limit",
    )
    prefix_digits: int = Field(
        default=3, ge=1, le=6, description="digits cut from the end of a number: its prefix"
    )
    prefix_limit: int = Field(
        default=10, ge=1, description="flows to one prefix per window before it is blocked"
    )
    prefix_window_seconds: int = Field(default=3600, ge=1)
    block_seconds: int = Field(default=12 * 3600, ge=1, description="how long a block holds")
    min_conversion: float = Field(
        default=0.2,
        ge=0,
        le=1,
        description="share of codes verified below which a prefix or country is blocked",
    )
    min_volume: int = Field(
        default=50, ge=1, description="codes past their chance before conversion is judged"
    )
    conversion_window_seconds: int = Field(default=24 * 3600, ge=3600)
    feedback: bool = Field(
        default=False,
        description="the workspace reports verified codes it checks itself (feedback "
        "endpoint): its flows without an OTPflow code count for conversion too",
    )
    feedback_window_seconds: int = Field(
        default=600, ge=30, description="how long such a flow has to be reported verified"
    )
    safe_list: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="E.164 numbers, or prefixes ending in *, that no rule blocks",
    )

    @field_validator(
        "allowed_countries", "denied_countries", "refused_number_types", "safe_list", mode="before"
    )
    @classmethod
    def _comma_separated(cls, value: Any) -> Any:
        return split_csv(value)

    @field_validator("allowed_countries", "denied_countries")
    @classmethod
    def _countries(cls, value: list[str]) -> list[str]:
        for code in value:
            if len(code) != 2 or not code.isalpha():
                raise ValueError(f"{code!r} is not an ISO 3166 alpha-2 country code (GB, IN)")
        return [code.upper() for code in value]

    @field_validator("refused_number_types")
    @classmethod
    def _number_types(cls, value: list[str]) -> list[str]:
        for name in value:
            if name.lower() not in NUMBER_TYPES:
                raise ValueError(f"{name!r} is not a number type: one of {', '.join(NUMBER_TYPES)}")
        return [name.lower() for name in value]

    @field_validator("country_hourly_limits", mode="before")
    @classmethod
    def _country_limits(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        limits = country_pairs(value, "CC:limit (GB:500)")
        for country, limit in limits.items():
            if not limit.isdigit():
                raise ValueError(f"{country}:{limit} is not CC:limit (GB:500)")
        return {country: int(limit) for country, limit in limits.items()}

    @field_validator("safe_list")
    @classmethod
    def _safe_entries(cls, value: list[str]) -> list[str]:
        for entry in value:
            digits = entry.removeprefix("+").removesuffix("*")
            if not digits.isdigit():
                raise ValueError(f"{entry!r} is not an E.164 number or a prefix ending in *")
        return value


class FraudSettings(FraudRules):
    """The rules for every workspace, and the fields some workspaces set otherwise."""

    workspaces: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description='per-workspace overrides as JSON: {"acme": {"mode": "shadow"}}',
    )
    _resolved: dict[str, FraudRules] = PrivateAttr(default_factory=dict)

    @model_validator(mode="after")
    def _overrides_are_rules(self) -> FraudSettings:
        for workspace in self.workspaces:
            try:
                self.for_workspace(workspace)  # a bad override fails at start
            except ValidationError as exc:
                problems = "; ".join(
                    f"{'.'.join(map(str, error['loc']))}: {error['msg']}" for error in exc.errors()
                )
                raise ValueError(f"the override of workspace {workspace!r}: {problems}") from None
        return self

    def for_workspace(self, workspace: str) -> FraudRules:
        """The rules of one workspace: the global ones with its overrides applied (built once
        per workspace: every new flow asks)."""
        key = workspace if workspace in self.workspaces else ""
        rules = self._resolved.get(key)
        if rules is None:
            fields = self.model_dump(exclude={"workspaces"}) | self.workspaces.get(key, {})
            rules = self._resolved[key] = FraudRules.model_validate(fields)
        return rules
