"""The HTTP API (FastAPI): one app per process, built from settings.

``create_app`` builds the process's clients (Redis, broker, the providers' shared HTTP client)
once, keeps them on ``app.state`` for the routes in ``routes.py``, caps every body
(``body.py``) and answers every error in one shape (``errors.py``). ``POST /v1/otpflow`` calls
the same client function a Django or Flask app calls.
"""

from __future__ import annotations

import warnings
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.staticfiles import StaticFiles

from otpflow.api import dashboard
from otpflow.api.body import MAX_BODY_BYTES, LimitBodySize
from otpflow.api.deps import Services
from otpflow.api.dlr import DlrIntake
from otpflow.api.errors import EXCEPTION_HANDLERS
from otpflow.api.routes import router
from otpflow.api.schemas import REF, FeedbackBody, VerifyBody
from otpflow.config.process import freeze_heap
from otpflow.config.settings import InsecureDefaultWarning, Settings, load_settings
from otpflow.flow.logs import configure_logging
from otpflow.flow.models import FlowEnvelope
from otpflow.producers.client import OtpflowClient
from otpflow.providers import build_providers


def create_app(settings: Settings, client: OtpflowClient | None = None) -> FastAPI:
    """The API for one process; the client (Redis, broker) is built here unless given."""
    otp = client or OtpflowClient(settings)
    http = httpx.Client(timeout=settings.provider_timeout_seconds)
    intake = DlrIntake(
        otp.store, build_providers(settings, http), settings.verification_secrets, otp.tasks
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        freeze_heap()  # the app and its clients are built: keep full collections short
        yield
        http.close()
        otp.close()

    app = FastAPI(
        title="OTPflow",
        version="0.1.0",
        summary="Multi-channel OTP delivery with delivery-report driven fallback.",
        lifespan=lifespan,
        exception_handlers={**EXCEPTION_HANDLERS, **dashboard.EXCEPTION_HANDLERS},
    )
    app.state.services = Services(
        settings=settings,
        otp=otp,
        intake=intake,
        metrics=otp.store.metrics,
        api_keys=dict(settings.api_keys),
    )
    app.add_middleware(LimitBodySize, max_bytes=MAX_BODY_BYTES)
    app.include_router(router)
    app.include_router(dashboard.router)
    app.mount(dashboard.STATIC_PATH, StaticFiles(directory=dashboard.STATIC_DIR), name="static")
    app.openapi = lambda: openapi(app)  # type: ignore[method-assign]
    return app


def openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's document without its 422 answers (parameter errors are answered 400, see
    errors.py), and with the request bodies' nested models where their references point."""
    if app.openapi_schema is None:
        schema = get_openapi(
            title=app.title, version=app.version, summary=app.summary, routes=app.routes
        )
        for path in schema["paths"].values():
            for operation in path.values():
                operation.get("responses", {}).pop("422", None)
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        for model in (FlowEnvelope, VerifyBody, FeedbackBody):
            components.update(model.model_json_schema(ref_template=REF).get("$defs", {}))
        app.openapi_schema = schema
    return app.openapi_schema


def app_from_env() -> FastAPI:
    """The app of one of several API processes (``otpflow api --processes N``): each builds
    its own from the environment, after its parent has checked the settings."""
    with warnings.catch_warnings():  # the parent has told the development defaults already
        warnings.simplefilter("ignore", InsecureDefaultWarning)
        settings = load_settings()
    configure_logging(settings.log_level)
    return create_app(settings)
