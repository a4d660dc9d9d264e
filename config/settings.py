"""OTPflow settings: one pydantic-settings object, built once at each process's edge.

Every setting is an environment variable with the prefix ``OTPFLOW_``; nested settings use
``__`` (``OTPFLOW_PROVIDERS__ZIXFLOW__API_KEY``). A ``.env`` file in the working directory is
read too. The README's settings table and ``config/.env.example`` list them all; tests keep the
three in step.

Code below the edge never reads the environment: the CLI, the Celery app module and the API
factory call :func:`load_settings` once and pass the object (or a part of it) down.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    Field,
    SecretStr,
    TypeAdapter,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from otpflow.config.dashboard import DashboardSettings
from otpflow.config.fraud import FraudSettings
from otpflow.config.routing import RoutingSettings
from otpflow.config.values import split_csv

DEV_SECRET = "otpflow-development-secret-change-me"
# an HMAC key shorter than its hash's output is weaker than it looks (RFC 2104)
MIN_SECRET_BYTES = 32
# the development key serves the demo's workspace and the producers' default one
DEV_API_KEYS = "demo:demo-key,default:demo-key"

logger = logging.getLogger("otpflow.config")


class ZixflowSettings(BaseModel):
    """The Zixflow-style ingest API (seed 001 SMS, WhatsApp ingest)."""

    base_url: str = "https://api-ai.zixflow.com"
    api_key: SecretStr = SecretStr("")
    workspace_id: str = ""


class MessageFlowSettings(BaseModel):
    """The MessageFlow-style SMS API (seed 002)."""

    base_url: str = "https://api.messageflow.com"
    application_key: SecretStr = SecretStr("")
    authorization: SecretStr = SecretStr("")


class GatewaySettings(BaseModel):
    """The JSON gateway (seed 003) for voice, telegram, viber, whatsapp, rcs and sms."""

    base_url: str = ""
    auth: SecretStr = SecretStr("")


class SmtpSettings(BaseModel):
    """SMTP for email: acceptance by the server counts as sent."""

    host: str = "127.0.0.1"
    port: int = 25
    username: str = ""
    password: SecretStr = SecretStr("")
    # "none" by default: a relay without login (the simulator, a local MTA) keeps working as it
    # did, and a login is refused without TLS, so credentials never travel in clear by default
    tls: Literal["none", "starttls", "implicit"] = Field(
        default="none",
        description="TLS to the SMTP server, certificate and host name verified: 'starttls' "
        "upgrades a plain connection (port 587), 'implicit' speaks TLS from the start (port "
        "465), 'none' sends in clear (a local relay only).",
    )
    allow_plaintext_auth: bool = Field(
        default=False,
        description="Allow the login without TLS (tls 'none'): for a trusted local relay only.",
    )
    timeout_seconds: float = 10.0
    accepted_is_delivered: bool = Field(
        default=False,
        description="Count the server's acceptance as delivered: for a server that is the "
        "recipients' own mail system. Otherwise acceptance is only 'sent'.",
    )

    @model_validator(mode="before")
    @classmethod
    def _starttls_means_tls_starttls(cls, data: Any) -> Any:
        # OTPFLOW_PROVIDERS__SMTP__STARTTLS=true came before ``tls``: honour it, rather than
        # quietly send in clear where STARTTLS was asked for
        if isinstance(data, dict) and "starttls" in data:
            data = dict(data)
            if TypeAdapter(bool).validate_python(data.pop("starttls")):
                data.setdefault("tls", "starttls")
        return data


class Limits(BaseModel):
    """Abuse limits: flows per recipient, API requests per workspace."""

    recipient_flows: int = Field(default=5, ge=1, description="flows per recipient per window")
    recipient_messages: int = Field(
        default=10,
        ge=1,
        description="messages per recipient per window; a flow counts one per step to it",
    )
    recipient_window_seconds: int = Field(default=600, ge=1)
    workspace_rps: int = Field(default=100, ge=1, description="API requests per second")
    verify_failures: int = Field(
        default=10, ge=1, description="wrong codes per recipient per window, across flows"
    )
    verify_failure_window_seconds: int = Field(default=3600, ge=1)


class ProvidersSettings(BaseModel):
    zixflow: ZixflowSettings = ZixflowSettings()
    messageflow: MessageFlowSettings = MessageFlowSettings()
    gateway: GatewaySettings = GatewaySettings()
    smtp: SmtpSettings = SmtpSettings()


class RoutesSettings(BaseModel):
    """Which providers serve each channel, in failover order."""

    model_config = {"extra": "allow"}

    sms: Annotated[list[str], NoDecode] = ["zixflow"]
    whatsapp: Annotated[list[str], NoDecode] = ["zixflow"]
    rcs: Annotated[list[str], NoDecode] = ["zixflow"]
    email: Annotated[list[str], NoDecode] = ["zixflow"]
    voice: Annotated[list[str], NoDecode] = ["gateway"]
    telegram: Annotated[list[str], NoDecode] = ["gateway"]
    viber: Annotated[list[str], NoDecode] = ["gateway"]

    @field_validator("sms", "whatsapp", "rcs", "email", "voice", "telegram", "viber", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        return split_csv(value)

    def for_channel(self, channel: str) -> list[str]:
        value = getattr(self, channel, None)
        if value is None:
            return []
        parsed = split_csv(value)
        return list(parsed) if isinstance(parsed, list) else []


class Settings(BaseSettings):
    """Everything an OTPflow process needs to know about its surroundings."""

    model_config = SettingsConfigDict(
        env_prefix="OTPFLOW_",
        env_nested_delimiter="__",
        env_file=".env",
        extra="ignore",
    )

    redis_url: str = Field(
        default="redis://127.0.0.1:6379/0", description="Redis holding flow state."
    )
    broker_url: str = Field(default="", description="Celery broker; empty means redis_url.")
    public_url: str = Field(
        default="http://127.0.0.1:8000",
        description="Base URL where providers reach this API; DLR callback URLs are built on it.",
    )
    secret: SecretStr = Field(
        default=SecretStr(DEV_SECRET),
        description="Master secret (at least 32 bytes): the keys of DLR callback tokens and "
        "of each workspace's webhook signatures are derived from it.",
    )
    previous_secrets: Annotated[list[SecretStr], NoDecode] = Field(
        default_factory=list,
        description="Secrets OTPFLOW_SECRET replaced, comma separated: DLR callback tokens "
        "made with them are still accepted while the flows they belong to run (rotation).",
    )
    api_keys: Annotated[dict[str, str], NoDecode] = Field(
        default_factory=lambda: _parse_api_keys(DEV_API_KEYS),
        description="workspace:key pairs, comma separated.",
    )
    allow_private_webhooks: bool = Field(
        default=False,
        description="Allow webhooks to loopback/private addresses (development and tests).",
    )
    providers: ProvidersSettings = ProvidersSettings()
    limits: Limits = Limits()
    fraud: FraudSettings = FraudSettings()
    routes: RoutesSettings = RoutesSettings()
    routing: RoutingSettings = RoutingSettings()
    dashboard: DashboardSettings = DashboardSettings()

    flow_ttl_seconds: int = Field(
        default=7 * 24 * 3600, ge=60, description="How long flow state is kept in Redis."
    )
    send_budget_seconds: float = Field(
        default=20.0,
        gt=0,
        description="Time a step may spend on provider retries before the flow moves on.",
    )
    provider_attempts: int = Field(
        default=3,
        ge=1,
        description="Transient failures on one provider before a step fails over to the next.",
    )
    provider_timeout_seconds: float = Field(
        default=10.0, gt=0, description="Timeout of one provider HTTP request."
    )
    webhook_timeout_seconds: float = Field(
        default=5.0, gt=0, description="The whole time one webhook POST may take."
    )
    webhook_max_attempts: int = Field(
        default=6, ge=1, description="Attempts for a switch webhook before giving up."
    )
    timer_poll_seconds: float = Field(
        default=0.05,
        gt=0,
        le=5,
        description="How often each worker's timer loop looks for due timers when none is due "
        "sooner: a timeout fires at most this late (plus the time to act on it).",
    )
    recovery_grace_seconds: float = Field(
        default=10.0,
        gt=0,
        description="How long a step may wait unclaimed (its send lost with a killed worker, "
        "or queued behind a backlog) before the workers send it again, and how long a timer "
        "a worker took stays its own before another worker may take it.",
    )
    log_level: str = Field(default="WARNING", description="Log level of OTPflow processes.")
    task_events: bool = Field(
        default=False,
        description="Workers send task events from the start. Off, they send them once a "
        "monitor asks (Flower does every 5 s): events nobody reads cost a fifth of a worker's "
        "CPU.",
    )

    @property
    def task_lease_seconds(self) -> float:
        """How long a published webhook task may wait and run before the workers publish it
        again (it runs at least once): a few webhook timeouts plus the recovery grace."""
        return 3 * self.webhook_timeout_seconds + self.recovery_grace_seconds

    @field_validator("secret")
    @classmethod
    def _secret_long_enough(cls, value: SecretStr) -> SecretStr:
        # an empty or short HMAC key would let anyone forge DLR tokens and webhook signatures
        secret = value.get_secret_value()
        if not secret.strip():
            raise ValueError("must not be empty: set a long random string")
        if secret != DEV_SECRET and len(secret.encode()) < MIN_SECRET_BYTES:
            raise ValueError(
                f"must be at least {MIN_SECRET_BYTES} bytes: set a long random string "
                "(python -c 'import secrets; print(secrets.token_urlsafe(32))')"
            )
        return value

    @field_validator("previous_secrets", mode="before")
    @classmethod
    def _split_previous_secrets(cls, value: object) -> object:
        return split_csv(value)

    @property
    def verification_secrets(self) -> list[str]:
        """The secrets DLR callback tokens are accepted with: the current one first."""
        return [s.get_secret_value() for s in (self.secret, *self.previous_secrets)]

    @field_validator("api_keys", mode="before")
    @classmethod
    def _parse_keys(cls, value: object) -> object:
        if isinstance(value, str):
            return _parse_api_keys(value)
        return value

    @model_validator(mode="after")
    def _default_broker(self) -> Settings:
        if not self.broker_url:
            self.broker_url = self.redis_url
        self.public_url = self.public_url.rstrip("/")
        return self

    @property
    def uses_dev_secret(self) -> bool:
        return self.secret.get_secret_value() == DEV_SECRET

    @property
    def uses_dev_api_keys(self) -> bool:
        return self.api_keys == _parse_api_keys(DEV_API_KEYS)


def _parse_api_keys(raw: str) -> dict[str, str]:
    keys: dict[str, str] = {}
    for pair in raw.split(","):
        pair = pair.strip()
        if not pair:
            continue
        workspace, sep, key = pair.partition(":")
        if not sep or not workspace.strip() or not key.strip():
            raise ValueError("OTPFLOW_API_KEYS must be workspace:key pairs separated by commas")
        keys[workspace.strip()] = key.strip()
    return keys


class InsecureDefaultWarning(UserWarning):
    """A development default (secret, API key) is in use."""


def load_settings(**overrides: object) -> Settings:
    """Build the settings once at a process's edge; warn loudly about development defaults."""
    settings = Settings(**overrides)  # type: ignore[arg-type]
    if settings.uses_dev_secret:
        warnings.warn(
            "OTPFLOW_SECRET is not set: using the public development secret. Anyone can forge "
            "DLR callbacks and webhook signatures. Set OTPFLOW_SECRET before real use.",
            InsecureDefaultWarning,
            stacklevel=2,
        )
    if settings.uses_dev_api_keys:
        warnings.warn(
            "OTPFLOW_API_KEYS is not set: the API accepts the development key 'demo-key' "
            "(workspaces demo and default). "
            "Set OTPFLOW_API_KEYS before exposing the API.",
            InsecureDefaultWarning,
            stacklevel=2,
        )
    return settings


def overrides_from_mapping(values: Mapping[str, Any]) -> dict[str, Any]:
    """Settings written as a (nested) mapping, field names in any case, as keyword overrides
    for :class:`Settings`. Keys of free-form dicts (``api_keys``) keep their case, and the
    caller's mappings are copied, never changed."""
    overrides: dict[str, Any] = {}
    _merge(overrides, values, Settings)
    return overrides


def overrides_from_names(values: Mapping[str, Any], prefix: str = "OTPFLOW_") -> dict[str, Any]:
    """``OTPFLOW_LIMITS__RECIPIENT_FLOWS = 3`` and the like (the environment's names; a value
    may itself be a mapping) as keyword overrides for :class:`Settings`; other names are
    skipped. A name nested deeper than another merges into it."""
    overrides: dict[str, Any] = {}
    for name, value in values.items():
        if not isinstance(name, str) or not name.startswith(prefix) or name == prefix:
            continue
        nested: Any = value
        for part in reversed(name[len(prefix) :].split("__")):
            nested = {part: nested}
        _merge(overrides, nested, Settings)
    return overrides


def _merge(target: dict[str, Any], values: Mapping[str, Any], model: type[BaseModel]) -> None:
    for key, value in values.items():
        name = str(key).lower()
        field = model.model_fields.get(name)
        inner = field.annotation if field is not None else None
        if isinstance(value, Mapping) and isinstance(inner, type) and issubclass(inner, BaseModel):
            node = target.get(name)
            target[name] = node = dict(node) if isinstance(node, dict) else {}
            _merge(node, value, inner)
        else:
            target[name] = dict(value) if isinstance(value, Mapping) else value
