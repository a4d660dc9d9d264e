"""The objects a worker or API process builds once from its settings and shares."""

from __future__ import annotations

import logging
import threading
from functools import cached_property

import httpx
from celery import Celery
from redis import Redis

from otpflow.config.process import freeze_heap
from otpflow.config.settings import Settings
from otpflow.flow.contract import Tasks
from otpflow.flow.keyring import Keyring
from otpflow.flow.router import Router
from otpflow.flow.routing import Route
from otpflow.flow.signing import dlr_token
from otpflow.flow.store import FlowStore, connect_redis
from otpflow.providers import Callback, Provider, build_providers
from otpflow.worker.http import http_client
from otpflow.worker.webhooks import webhook_client

# Beyond the budget, the last attempt may still be waiting on its provider.
SEND_LEASE_SLACK_SECONDS = 1.0

logger = logging.getLogger("otpflow.worker")


class Runtime:
    """Redis, the flow store, the one HTTP client and the providers of one process.

    Members are built on first use, after a prefork pool has forked, so no socket is shared
    between processes.
    """

    def __init__(self, settings: Settings, celery: Celery | None = None) -> None:
        self.settings = settings
        self.celery = celery
        self._lock = threading.Lock()

    @cached_property
    def redis(self) -> Redis:
        return connect_redis(self.settings.redis_url)

    @cached_property
    def store(self) -> FlowStore:
        settings = self.settings
        return FlowStore(
            self.redis,
            Keyring.from_secret(settings.secret.get_secret_value()),
            settings.flow_ttl_seconds,
            settings.recovery_grace_seconds,
            settings.routing,
        )

    @cached_property
    def router(self) -> Router:
        return Router(self.store.routing, self.settings.routing, self.settings.routes)

    @cached_property
    def tasks(self) -> Tasks:
        assert self.celery is not None, "a runtime that enqueues needs its Celery app"
        return Tasks(self.celery, self.store, self.settings.task_lease_seconds)

    @cached_property
    def http(self) -> httpx.Client:
        """The providers' client: one per process, each call held to a total deadline by
        the send (:func:`otpflow.worker.http.deadline`)."""
        return http_client(httpx.Timeout(self.settings.provider_timeout_seconds, connect=3.0))

    @cached_property
    def webhook_http(self) -> httpx.Client:
        """The client for callers' URLs: connects only to checked addresses (SSRF)."""
        return webhook_client(
            self.settings.allow_private_webhooks, self.settings.webhook_timeout_seconds
        )

    @cached_property
    def providers(self) -> dict[str, Provider]:
        return build_providers(self.settings, self.http)

    @property
    def secret(self) -> str:
        return self.settings.secret.get_secret_value()

    def route(self, channel: str, country: str, chosen: tuple[str, ...] = ()) -> Route:
        """The providers one message tries, in order (the router's choice, or ``chosen``: the
        order an earlier attempt of the step chose)."""
        if chosen:
            kept = tuple(name for name in chosen if name in self.providers)
            return Route(kept, tuple({"rank": n, "kept": True} for n in range(1, len(kept) + 1)))
        return self.router.route(channel, country, list(self.providers))

    def callback(self, provider: str, flow_id: str, step: int) -> Callback:
        token = dlr_token(self.secret, provider, flow_id, step)
        return Callback(
            url=f"{self.settings.public_url}/v1/dlr/{provider}?token={token}", data=token
        )

    @property
    def send_lease_seconds(self) -> float:
        """How long a step may stay "sending" before a check declares its task lost."""
        settings = self.settings
        return (
            settings.send_budget_seconds
            + settings.provider_timeout_seconds
            + SEND_LEASE_SLACK_SECONDS
        )

    def warm(self) -> None:
        """Build now what the first task would build while every task behind it waits (about
        150 ms): the HTTP clients and their TLS contexts, the providers, the Redis connection, and
        Celery's publishing machinery. Unreachable services are left to the first use. Then
        the heap built so far is frozen (:func:`freeze_heap`)."""
        _ = self.providers  # and the HTTP client they share
        _ = self.webhook_http
        try:
            self.redis.ping()
            if self.celery is not None:
                _ = self.celery.backend  # a first publish loads it, through entry points
                with self.celery.producer_or_acquire() as producer:
                    producer.connection.ensure_connection(max_retries=1)
        except Exception:  # warming is an optimisation, never a reason not to start
            logger.warning("could not warm connections; they open on first use", exc_info=True)
        freeze_heap()

    def close(self) -> None:
        if "http" in self.__dict__:
            self.http.close()
        if "webhook_http" in self.__dict__:
            self.webhook_http.close()
        if "redis" in self.__dict__:
            self.redis.close()
