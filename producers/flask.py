"""OTPflow in a Flask app: settings from ``app.config``, one client per app, JSON error replies.

Every ``OTPFLOW_*`` key in ``app.config`` is a setting; nested settings use ``__``, as in the
environment::

    app.config["OTPFLOW_REDIS_URL"] = "redis://127.0.0.1:6379/0"
    app.config["OTPFLOW_BROKER_URL"] = "redis://127.0.0.1:6379/1"
    app.config["OTPFLOW_PROVIDERS__ZIXFLOW__API_KEY"] = "..."
    otpflow = OTPflow(app)  # or OTPflow() at import time, otpflow.init_app(app) in a factory

The ``OTPFLOW_*`` environment fills whatever the config does not name. The settings and the
client are built on first use (so config set after ``init_app`` still counts), once per app
and process (again after a fork), and kept on ``app.extensions["otpflow"]``.

Nothing here answers HTTP by itself: a view calls :meth:`OTPflow.send` and friends and, for the
four OTPflow errors, may return :func:`error_response` (a Flask ``(body, status, headers)``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import Flask, current_app

from otpflow.config.settings import Settings, load_settings, overrides_from_names
from otpflow.flow.models import FlowRequest
from otpflow.flow.outcomes import Outcome
from otpflow.flow.views import FlowView
from otpflow.producers.client import DEFAULT_WORKSPACE, ClientHolder, OtpflowClient
from otpflow.producers.errors import error_reply

__all__ = ["EXTENSION", "OTPflow", "error_response", "settings_from_config"]

EXTENSION = "otpflow"
PREFIX = "OTPFLOW_"


def settings_from_config(config: Mapping[str, Any]) -> Settings:
    """``OTPFLOW_LIMITS__RECIPIENT_FLOWS = 3`` -> ``Settings(limits={"recipient_flows": 3})``."""
    return load_settings(**overrides_from_names(config, PREFIX))


class OTPflow:
    """The Flask extension: ``OTPflow(app)`` or ``OTPflow()`` then ``init_app(app)``.

    Its methods use the current app's client, so one instance serves several apps.
    """

    def __init__(self, app: Flask | None = None) -> None:
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        app.extensions[EXTENSION] = ClientHolder(lambda: settings_from_config(app.config))

    @staticmethod
    def _holder(app: Flask | None = None) -> ClientHolder:
        target = app if app is not None else current_app
        try:
            holder = target.extensions[EXTENSION]
        except KeyError:
            raise RuntimeError("OTPflow.init_app(app) was not called for this app") from None
        assert isinstance(holder, ClientHolder)
        return holder

    def get_client(self, app: Flask | None = None) -> OtpflowClient:
        """The app's client (default: the current app), built on first use."""
        return self._holder(app).get()

    @property
    def client(self) -> OtpflowClient:
        return self.get_client()

    def settings(self, app: Flask | None = None) -> Settings:
        """The app's OTPflow settings, as built from its config."""
        return self.get_client(app).settings

    def reset(self, app: Flask | None = None) -> None:
        """Forget the app's settings and client (config changed, tests); rebuilt on next use."""
        self._holder(app).reset()

    def send(
        self,
        request: FlowRequest | Mapping[str, Any],
        workspace: str = DEFAULT_WORKSPACE,
        idempotency_key: str | None = None,
    ) -> str:
        """Validate, store and enqueue a flow; its request id.

        Raises ``InvalidRequest``, ``RateLimited``, ``Conflict`` or ``ServiceUnavailable``
        (see :func:`error_response`).
        """
        return self.client.send(request, workspace, idempotency_key)

    def status(self, request_id: str, workspace: str | None = None) -> FlowView | None:
        """The flow, or None if unknown, expired, or (given ``workspace``) someone else's."""
        return self.client.status(request_id, workspace)

    def cancel(self, request_id: str) -> Outcome:
        """End a flow now; ``kind`` is ``cancelled``, or says why not (``missing``, ...)."""
        return self.client.cancel(request_id)

    def verify(self, request_id: str, code: str) -> Outcome:
        """Check a typed code: ``verified``, ``wrong`` (detail: attempts left), ``locked``,
        ``expired``, ``already_verified`` or ``missing``."""
        return self.client.verify(request_id, code)


def error_response(exc: Exception) -> tuple[dict[str, Any], int, dict[str, str]]:
    """A Flask reply ``(body, status, headers)`` for an OTPflow error (see ``error_reply``)."""
    return error_reply(exc)
