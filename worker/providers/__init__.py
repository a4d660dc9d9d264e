"""Provider adapters, one module per provider API, and the table that builds them."""

from __future__ import annotations

import httpx

from otpflow.config.settings import Settings
from otpflow.worker.providers.base import Callback, DeliveryReport, Provider
from otpflow.worker.providers.gateway import GatewayProvider
from otpflow.worker.providers.messageflow import MessageFlowProvider
from otpflow.worker.providers.smtp import SmtpProvider
from otpflow.worker.providers.zixflow import ZixflowProvider

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
