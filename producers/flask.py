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

import os
import threading
from collections.abc import Mapping
from typing import Any

from flask import Flask, current_app

from otpflow.config.settings import Settings, load_settings
from otpflow.flow.models import FlowRequest
from otpflow.flow.store import FlowView, Outcome
from otpflow.producers.client import (
    DEFAULT_WORKSPACE,
    OtpflowClient,
    error_reply,
)

__all__ = ["EXTENSION", "OTPflow", "error_response", "settings_from_config"]

EXTENSION = "otpflow"
PREFIX = "OTPFLOW_"


def _merge(target: dict[str, Any], name: str, value: Any) -> None:
    """Put ``value`` at ``name`` in ``target``, lower-casing and merging nested mappings."""
    if isinstance(value, Mapping):
        existing = target.get(name)
        node = existing if isinstance(existing, dict) else {}
        target[name] = node
        for key, inner in value.items():
            _merge(node, str(key).lower(), inner)
    else:
        target[name] = value


def settings_from_config(config: Mapping[str, Any]) -> Settings:
    """``OTPFLOW_LIMITS__RECIPIENT_FLOWS = 3`` -> ``Settings(limits={"recipient_flows": 3})``."""
    overrides: dict[str, Any] = {}
    for key, value in config.items():
        if not isinstance(key, str) or not key.startswith(PREFIX) or key == PREFIX:
            continue
        *parents, leaf = [part.lower() for part in key[len(PREFIX) :].split("__")]
        target = overrides
        for part in parents:
            node = target.get(part)
            if not isinstance(node, dict):
                node = target[part] = {}
            target = node
        _merge(target, leaf, value)
    return load_settings(**overrides)


class _AppState:
    """What one app keeps on ``app.extensions["otpflow"]``: its settings and its client."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        self.lock = threading.Lock()
        self.settings: Settings | None = None
        self.client: OtpflowClient | None = None
        self.pid: int | None = None

    def get_client(self) -> OtpflowClient:
        client, pid = self.client, os.getpid()
        if client is not None and self.pid == pid:
            return client
        with self.lock:
            if self.client is None or self.pid != pid:
                if self.settings is None:
                    self.settings = settings_from_config(self.app.config)
                # a client inherited over fork shares sockets with the parent: build a new one
                self.client = OtpflowClient(self.settings)
                self.pid = pid
            return self.client

    def close(self) -> None:
        with self.lock:
            client, pid = self.client, self.pid
            self.client = self.pid = None
        if client is not None and pid == os.getpid():  # never close a parent's sockets
            client.close()


class OTPflow:
    """The Flask extension: ``OTPflow(app)`` or ``OTPflow()`` then ``init_app(app)``.

    Its methods use the current app's client, so one instance serves several apps.
    """

    def __init__(self, app: Flask | None = None) -> None:
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        app.extensions[EXTENSION] = _AppState(app)

    @staticmethod
    def _state(app: Flask | None = None) -> _AppState:
        target = app if app is not None else current_app
        try:
            state = target.extensions[EXTENSION]
        except KeyError:
            raise RuntimeError("OTPflow.init_app(app) was not called for this app") from None
        assert isinstance(state, _AppState)
        return state

    def get_client(self, app: Flask | None = None) -> OtpflowClient:
        """The app's client (default: the current app), built on first use."""
        return self._state(app).get_client()

    @property
    def client(self) -> OtpflowClient:
        return self.get_client()

    def settings(self, app: Flask | None = None) -> Settings:
        """The app's OTPflow settings, as built from its config."""
        return self.get_client(app).settings

    def reset(self, app: Flask | None = None) -> None:
        """Forget the app's settings and client (config changed, tests); rebuilt on next use."""
        state = self._state(app)
        state.close()
        state.settings = None

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
        view = self.client.status(request_id)
        if view is not None and workspace is not None and view.workspace != workspace:
            return None
        return view

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
