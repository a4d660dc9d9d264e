"""Provider adapters, one module per provider API, and the table that builds them."""

from __future__ import annotations

import httpx

from otpflow.config.settings import Settings
from otpflow.providers.base import Callback, DeliveryReport, Provider
from otpflow.providers.gateway import GatewayProvider
from otpflow.providers.messageflow import MessageFlowProvider
from otpflow.providers.smtp import SmtpProvider
from otpflow.providers.zixflow import ZixflowProvider

__all__ = ["Callback", "DeliveryReport", "Provider", "build_providers"]


def build_providers(settings: Settings, client: httpx.Client) -> dict[str, Provider]:
    """Every configured provider by name, sharing the process's one HTTP client."""
    providers = settings.providers
    return {
        "zixflow": ZixflowProvider(providers.zixflow, client),
        "messageflow": MessageFlowProvider(providers.messageflow, client),
        "gateway": GatewayProvider(providers.gateway, client),
        "smtp": SmtpProvider(providers.smtp),
    }
