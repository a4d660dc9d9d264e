"""Provider adapters, one module per provider API, and the table that builds them."""

from __future__ import annotations

import httpx

from otpflow.config.settings import Settings
from otpflow.worker.providers.base import Callback, DeliveryReport, Provider
from otpflow.worker.providers.zixflow import ZixflowProvider

__all__ = ["Callback", "DeliveryReport", "Provider", "build_providers"]


def build_providers(settings: Settings, client: httpx.Client) -> dict[str, Provider]:
    """Every configured provider by name, sharing the process's one HTTP client."""
    return {"zixflow": ZixflowProvider(settings.providers.zixflow, client)}
