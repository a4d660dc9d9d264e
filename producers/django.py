"""OTPflow in a Django project: settings from Django, one shared client, JSON error replies.

Settings come from the ``OTPFLOW`` dict in the Django settings, keys in any case and nested
like the settings themselves::

    OTPFLOW = {
        "REDIS_URL": "redis://127.0.0.1:6379/0",
        "BROKER_URL": "redis://127.0.0.1:6379/1",
        "PROVIDERS": {"ZIXFLOW": {"API_KEY": "..."}},
    }

Without an ``OTPFLOW`` dict, ``OTPFLOW_*`` names in the Django settings are used
(``OTPFLOW_PROVIDERS__ZIXFLOW__API_KEY``), and as always the ``OTPFLOW_*`` environment fills
whatever neither names. Nothing here touches ``django.conf.settings`` before the first call,
so importing this module needs no configured Django.

The client is built once per process (again after a fork), on first use, under a lock.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.core.signals import setting_changed
from django.http import JsonResponse

from otpflow.config.settings import (
    Settings,
    load_settings,
    overrides_from_mapping,
    overrides_from_names,
)
from otpflow.flow.outcomes import Outcome
from otpflow.flow.views import FlowView
from otpflow.producers.client import DEFAULT_WORKSPACE, ClientHolder, OtpflowClient
from otpflow.producers.errors import error_reply

__all__ = [
    "cancel",
    "error_response",
    "flow_status",
    "get_client",
    "reset_client",
    "send_otp",
    "settings_from_django",
    "verify",
]

SETTING = "OTPFLOW"
PREFIX = "OTPFLOW_"


def settings_from_django() -> Settings:
    """OTPflow's settings as this Django project configures them."""
    from django.conf import settings as django_settings

    configured = getattr(django_settings, SETTING, None)
    if configured is not None:
        if not isinstance(configured, Mapping):
            raise TypeError(f"settings.{SETTING} must be a dict, not {type(configured).__name__}")
        return load_settings(**overrides_from_mapping(configured))
    names = {name: getattr(django_settings, name) for name in dir(django_settings)}
    return load_settings(**overrides_from_names(names, PREFIX))


_holder = ClientHolder(settings_from_django)


def get_client() -> OtpflowClient:
    """This process's client, built on first use."""
    return _holder.get()


def reset_client() -> None:
    """Forget the client (settings changed, tests); the next call builds a new one."""
    _holder.reset()


def _on_setting_changed(*, setting: str, **_: Any) -> None:
    if setting == SETTING or setting.startswith(PREFIX):
        reset_client()


setting_changed.connect(_on_setting_changed, dispatch_uid="otpflow.producers.django")


def send_otp(
    request: Mapping[str, Any],
    workspace: str = DEFAULT_WORKSPACE,
    idempotency_key: str | None = None,
) -> str:
    """Validate, store and enqueue a flow; its request id. Errors: see :func:`error_response`."""
    return get_client().send(request, workspace, idempotency_key)


def flow_status(request_id: str, workspace: str | None = None) -> FlowView | None:
    """The flow, or None if it is unknown, expired, or (given ``workspace``) someone else's."""
    return get_client().status(request_id, workspace)


def cancel(request_id: str) -> Outcome:
    """End a flow now; ``kind`` is ``cancelled``, or says why not (``missing``, ...)."""
    return get_client().cancel(request_id)


def verify(request_id: str, code: str) -> Outcome:
    """Check a typed code: ``verified``, ``wrong`` (detail: attempts left), ``locked``,
    ``expired``, ``already_verified`` or ``missing``."""
    return get_client().verify(request_id, code)


def error_response(exc: Exception) -> JsonResponse:
    """The JSON reply for an OTPflow error, in the shape of OTPflow's own HTTP API (see
    ``error_reply``)."""
    body, status, headers = error_reply(exc)
    response = JsonResponse(body, status=status)
    for name, value in headers.items():
        response[name] = value
    return response
