"""The client a caller's app uses: validate a flow, store it, enqueue its first step.

It imports no worker code: step 0 is enqueued by task name, so a Django or Flask app that
sends flows pulls in no adapters, no web framework and no simulator.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import redis
from celery import Celery
from kombu.exceptions import OperationalError as BrokerError

from otpflow.config.celery import CHECK_STEP, RELAY_DLR, SEND_STEP, make_celery
from otpflow.config.settings import Settings
from otpflow.flow.models import FieldError, FlowRequest, InvalidRequest
from otpflow.flow.store import FlowStore, FlowView, connect_redis

logger = logging.getLogger("otpflow.producers")

DEFAULT_WORKSPACE = "default"


class ServiceUnavailable(RuntimeError):
    """Redis or the broker cannot be reached; nothing was stored or enqueued."""


class OtpflowClient:
    """Send flows and read their status from any Python process.

    Build one per process from settings (``OtpflowClient(load_settings())``) and share it; it
    holds a Redis connection pool and a Celery producer.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        redis_client: redis.Redis | None = None,
        celery_app: Celery | None = None,
    ) -> None:
        self.settings = settings
        self.redis = redis_client or connect_redis(settings.redis_url)
        self.store = FlowStore(self.redis, settings.flow_ttl_seconds)
        self.celery = celery_app or make_celery(settings, main="otpflow-producer")

    def send(
        self, request: FlowRequest | Mapping[str, Any], workspace: str = DEFAULT_WORKSPACE
    ) -> str:
        """Validate, store and enqueue a flow; return its request id.

        Raises ``InvalidRequest`` (naming every bad field) before anything is stored, and
        ``ServiceUnavailable`` when Redis or the broker is down, after undoing the store.
        """
        flow = request if isinstance(request, FlowRequest) else FlowRequest.parse(request)
        self._check_routes(flow)
        try:
            flow_id = self.store.create(workspace, flow)
        except redis.RedisError as exc:
            raise ServiceUnavailable("flow store (Redis) is unreachable") from exc
        try:
            self.celery.send_task(
                SEND_STEP, args=[flow_id, 0], retry=True, retry_policy=_PUBLISH_RETRY
            )
        except (BrokerError, OSError) as exc:
            self._forget(flow_id)
            raise ServiceUnavailable("task broker is unreachable") from exc
        try:
            self.store.mark_enqueued(flow_id)
        except redis.RedisError as exc:
            # unmarked, the flow is never sent and the sweeper discards it
            raise ServiceUnavailable("flow store (Redis) is unreachable") from exc
        logger.info("flow accepted", extra={"flow_id": flow_id, "steps": len(flow.steps)})
        return flow_id

    def _check_routes(self, flow: FlowRequest) -> None:
        """A channel no provider serves here is the caller's mistake: refuse it up front."""
        errors = [
            FieldError(
                f"messages.{index}.channel",
                f"no provider is configured for {step.channel!r} "
                f"(OTPFLOW_ROUTES__{step.channel.upper()})",
            )
            for index, step in enumerate(flow.steps)
            if not self.settings.routes.for_channel(step.channel)
        ]
        if errors:
            raise InvalidRequest(errors)

    def status(self, request_id: str) -> FlowView | None:
        """The flow's status, steps and timeline, or None if unknown (or expired)."""
        try:
            return self.store.get(request_id)
        except redis.RedisError as exc:
            raise ServiceUnavailable("flow store (Redis) is unreachable") from exc

    def health(self) -> dict[str, bool]:
        """Whether the flow store and the broker answer right now."""
        try:
            redis_ok = bool(self.redis.ping())
        except redis.RedisError:
            redis_ok = False
        try:
            with self.celery.connection_for_write() as connection:
                connection.ensure_connection(max_retries=1, interval_start=0, timeout=2)
            broker_ok = True
        except (BrokerError, OSError):
            broker_ok = False
        return {"redis": redis_ok, "broker": broker_ok}

    def relay_dlr(self, flow_id: str, step: int, index: int) -> None:
        """Ask a worker to pass a kept delivery report on to the caller's post_back_url."""
        self.celery.send_task(
            RELAY_DLR, args=[flow_id, step, index, 1], retry=True, retry_policy=_PUBLISH_RETRY
        )

    def check_now(self, flow_id: str, step: int) -> None:
        """Ask a worker to decide a step at once (a failed delivery report arrived)."""
        self.celery.send_task(
            CHECK_STEP, args=[flow_id, step], retry=True, retry_policy=_PUBLISH_RETRY
        )

    def _forget(self, flow_id: str) -> None:
        try:
            self.store.delete(flow_id)
        except redis.RedisError:
            logger.error("could not remove unenqueued flow", extra={"flow_id": flow_id})

    def close(self) -> None:
        self.redis.close()
        self.celery.close()


# A publish waits at most about two seconds for a broker before the caller hears 503.
_PUBLISH_RETRY = {"max_retries": 2, "interval_start": 0.2, "interval_step": 0.5, "interval_max": 1}
