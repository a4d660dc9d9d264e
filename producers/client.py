"""The client a caller's app uses: validate a flow, store it, enqueue its first step.

It imports no worker code: step 0 is enqueued by task name, so a Django or Flask app that
sends flows pulls in no adapters, no web framework and no simulator.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import threading
import uuid
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import redis
from celery import Celery
from kombu.exceptions import OperationalError as BrokerError

from otpflow.config.settings import Settings
from otpflow.flow import keys
from otpflow.flow.contract import Tasks, make_celery
from otpflow.flow.fraud import Screening, screening
from otpflow.flow.keyring import Keyring, KeyringMismatch
from otpflow.flow.models import FieldError, FlowRequest, InvalidRequest
from otpflow.flow.outcomes import FlowDiscarded, Outcome
from otpflow.flow.router import Router
from otpflow.flow.states import Kind
from otpflow.flow.store import FlowStore, connect_redis
from otpflow.flow.views import FlowView
from otpflow.producers.errors import (
    STORE_UNREACHABLE,
    Conflict,
    FraudRefused,
    ServiceUnavailable,
    refusal,
)

logger = logging.getLogger("otpflow.producers")

CODE_PATTERN = re.compile(r"[0-9]{4,10}")

DEFAULT_WORKSPACE = "default"


IDEMPOTENCY_SECONDS = 24 * 3600
# a key reserved by a send that died (and could not free it) is free again after this
IDEMPOTENCY_PENDING_SECONDS = 60


def _digest(flow: FlowRequest) -> str:
    return hashlib.sha256(json.dumps(flow.to_json_dict(), sort_keys=True).encode()).hexdigest()


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
        self.store = FlowStore(
            self.redis,
            Keyring.from_secret(settings.secret.get_secret_value()),
            settings.flow_ttl_seconds,
            settings.recovery_grace_seconds,
            settings.routing,
        )
        # orders the steps of a request that asks for it (channelOrder auto); the API's
        # routing table and gauges
        self.router = Router(self.store.routing, settings.routing, settings.routes)
        self.celery = celery_app or make_celery(settings, main="otpflow-producer")
        # what a cancel, a verify or a delivery report sets in motion
        self.tasks = Tasks(
            self.celery,
            self.store,
            settings.task_lease_seconds,
            {"retry": True, "retry_policy": _PUBLISH_RETRY},
        )

    def send(
        self,
        request: FlowRequest | Mapping[str, Any],
        workspace: str = DEFAULT_WORKSPACE,
        idempotency_key: str | None = None,
    ) -> str:
        """Validate, store and enqueue a flow; return its request id.

        Raises ``InvalidRequest`` (naming every bad field) before anything is stored;
        ``RateLimited`` or ``Conflict`` when an abuse limit or an idempotency key says no; and
        ``ServiceUnavailable`` when Redis or the broker is down, after undoing the store. The
        same ``idempotency_key`` with the same request returns the same id for 24 h.
        """
        flow = (
            request
            if isinstance(request, FlowRequest)
            else FlowRequest.parse(
                request, allow_private_destinations=self.settings.allow_private_webhooks
            )
        )
        self._check_routes(flow)
        try:
            idempotency = None
            if idempotency_key is not None:
                idempotency = keys.idempotency(workspace, idempotency_key), _digest(flow)
                earlier = self._claim_idempotency(*idempotency)
                if earlier is not None:
                    return earlier
            try:
                flow_id = self._start(flow, workspace, idempotency)
            except BaseException:
                if idempotency is not None:
                    with contextlib.suppress(redis.RedisError):  # else it lapses by itself
                        self.store.free_idempotency(idempotency[0])
                raise
        except redis.RedisError as exc:
            raise ServiceUnavailable(f"{STORE_UNREACHABLE}; nothing was stored, try again") from exc
        logger.info("flow accepted", extra={"flow_id": flow_id, "steps": len(flow.steps)})
        return flow_id

    def _claim_idempotency(self, name: str, digest: str) -> str | None:
        """None if this key is new (now reserved while the send runs); else the earlier
        request id."""
        held = self.store.reserve_idempotency(name, digest, IDEMPOTENCY_PENDING_SECONDS)
        if held is None:
            return None
        stored = held.split(" ")
        if stored[0] != digest:
            raise Conflict("this Idempotency-Key was used with a different request")
        if len(stored) < 2 or stored[1] == "pending":
            raise Conflict("a request with this Idempotency-Key is still being processed")
        return stored[1]

    def _start(
        self, flow: FlowRequest, workspace: str, idempotency: tuple[str, str] | None = None
    ) -> str:
        flow_id = str(uuid.uuid4())
        # limits count a recipient however it is written (E.164, folded email address)
        recipients = flow.messages_per_recipient()
        remember = None
        if idempotency is not None:
            name, digest = idempotency
            remember = (name, f"{digest} {flow_id}", IDEMPOTENCY_SECONDS)
        admitted, screened = self._admit(flow_id, workspace, flow, recipients)
        if admitted.kind == Kind.FRAUD_SHADOWED:
            # told yes, like any flow: stored as blocked, never published
            if remember is not None:
                self.store.keep_idempotency(*remember)
        else:
            self._publish(flow_id, workspace, set(recipients), screened, remember)
        self._index(flow_id, workspace, recipients)
        return flow_id

    def _admit(
        self, flow_id: str, workspace: str, flow: FlowRequest, recipients: dict[str, int]
    ) -> tuple[Outcome, Screening | None]:
        """Screen, order and store the flow with its limits, raising what refused it.

        The limits and the flow are one step, nothing stored if refused. A script cut off
        midway leaves at most an unconfirmed flow, which its step-0 timer discards."""
        limits = self.settings.limits
        rules = self.settings.fraud.for_workspace(workspace)
        screened = screening(self.store.keyring, rules, flow)
        reordered = None
        if flow.channel_order == "auto":
            flow, reordered = self.router.reorder(flow)
        admitted = self.store.submit(
            flow_id,
            workspace,
            flow,
            recipients,
            limits,
            self._active_ttl(flow),
            screened,
            reordered,
        )
        if admitted.kind in (Kind.FRAUD_REFUSED, Kind.FRAUD_SHADOWED):
            logger.info(
                "flow refused by the fraud guard",
                extra={"flow_id": flow_id, "reason": admitted.detail, "mode": rules.mode},
            )
        if admitted.kind == Kind.FRAUD_REFUSED:
            raise FraudRefused(admitted.detail)
        if admitted.kind not in (Kind.OK, Kind.FRAUD_SHADOWED):
            raise refusal(admitted, limits)
        return admitted, screened

    def _publish(
        self,
        flow_id: str,
        workspace: str,
        addresses: set[str],
        screened: Screening | None,
        remember: tuple[str, str, int] | None,
    ) -> None:
        """Enqueue the stored flow's first send, then confirm it (and its Idempotency-Key).

        A flow the broker would not take is taken back whole; one left unconfirmed is never
        sent, and its step-0 timer discards it."""
        try:
            self.tasks.first_send(flow_id)
        except (BrokerError, OSError) as exc:
            self._undo(flow_id, workspace, addresses, screened)
            raise ServiceUnavailable(
                "task broker is unreachable; nothing was stored, try again"
            ) from exc
        try:
            early = self.store.mark_enqueued(flow_id, remember)
        except FlowDiscarded as exc:
            raise ServiceUnavailable(
                "the flow was not confirmed in time and was dropped; nothing is sent, try again"
            ) from exc
        if early:
            # a worker took the first send before this confirmation and let it go: send again
            self.tasks.send(flow_id, 0)

    def _index(self, flow_id: str, workspace: str, recipients: Iterable[str]) -> None:
        """Let support find an accepted flow by its recipients (the dashboard); the flow is
        accepted whether or not this lands."""
        try:
            self.store.dashboard.index(workspace, flow_id, recipients)
        except redis.RedisError:
            logger.warning("flow not indexed for the dashboard", extra={"flow_id": flow_id})

    def _active_ttl(self, flow: FlowRequest) -> int:
        """How long a recipient's "flow running" marker may live: the flow's whole budget."""
        settings = self.settings
        per_step = settings.send_budget_seconds + settings.provider_timeout_seconds
        budget = sum(step.timeout + per_step for step in flow.steps)
        return int(budget + 2 * settings.recovery_grace_seconds + 60)

    def cancel(self, request_id: str) -> Outcome:
        """End a flow now: no step is sent after this."""
        try:
            outcome = self.store.cancel(request_id)
        except redis.RedisError as exc:
            raise ServiceUnavailable(STORE_UNREACHABLE) from exc
        self._follow_up(outcome, request_id)
        return outcome

    def verify(self, request_id: str, code: str) -> Outcome:
        """Check the code a person typed (constant time, attempts counted, expiry honoured).

        ``InvalidRequest`` for something that is no code at all (4-10 digits): it costs no
        attempt."""
        if not (isinstance(code, str) and CODE_PATTERN.fullmatch(code)):
            raise InvalidRequest([FieldError("code", "a string of 4-10 digits is required")])
        try:
            outcome = self.store.verify(request_id, code, self.settings.limits)
        except redis.RedisError as exc:
            raise ServiceUnavailable(STORE_UNREACHABLE) from exc
        except KeyringMismatch as exc:
            raise ServiceUnavailable(str(exc)) from exc
        if outcome.kind == Kind.VERIFIED:
            self._converted(request_id)
        self._follow_up(outcome, request_id)
        return outcome

    def feedback(self, request_id: str) -> bool:
        """The caller checked this flow's code itself and it was right: the fraud guard
        counts the flow as converted. True the first time, False after."""
        try:
            first = self.store.fraud.converted(request_id, self.settings.fraud)
            if first:
                self.store.add_event(request_id, {"type": "feedback", "event": "verified"})
        except redis.RedisError as exc:
            raise ServiceUnavailable(STORE_UNREACHABLE) from exc
        return first

    def _converted(self, flow_id: str) -> None:
        """A verified code counts for the fraud guard's conversion; the person is verified
        whether or not this count lands."""
        try:
            self.store.fraud.converted(flow_id, self.settings.fraud)
        except redis.RedisError:
            logger.warning("verification not counted for conversion", extra={"flow_id": flow_id})

    def _follow_up(self, outcome: Outcome, flow_id: str) -> None:
        """Ask a worker to tell the caller its flow ended (for callers who asked).

        Called after the flow has ended: with both the broker and Redis down the caller loses
        its terminal webhook (logged), never gets an error for a cancel or verify that took
        effect."""
        try:
            self.tasks.follow_up(outcome, flow_id, 0)
        except redis.RedisError:
            logger.warning("terminal webhook not enqueued", extra={"flow_id": flow_id})

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

    def status(self, request_id: str, workspace: str | None = None) -> FlowView | None:
        """The flow's status, steps and timeline, or None if unknown, expired or (given
        ``workspace``) another workspace's."""
        try:
            view = self.store.get(request_id)
        except redis.RedisError as exc:
            raise ServiceUnavailable(STORE_UNREACHABLE) from exc
        if view is not None and workspace is not None and view.workspace != workspace:
            return None
        return view

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

    def _undo(
        self, flow_id: str, workspace: str, addresses: set[str], screened: Screening | None
    ) -> None:
        """Take back a flow that was never accepted: its keys and what it took of the limits
        and the fraud guard's counts. Unconfirmed, it is never sent even if this fails (its
        step-0 timer discards it)."""
        try:
            self.store.delete(flow_id)
            self.store.release(flow_id, workspace, addresses)
            if screened is not None:
                self.store.fraud.release(flow_id, workspace, screened)
        except redis.RedisError:
            logger.error("could not remove unenqueued flow", extra={"flow_id": flow_id})

    def close(self) -> None:
        self.redis.close()
        self.celery.close()


# A publish waits at most about two seconds for a broker before the caller hears 503.
_PUBLISH_RETRY = {"max_retries": 2, "interval_start": 0.2, "interval_step": 0.5, "interval_max": 1}


class ClientHolder:
    """One shared client per process for a framework integration: built on first use from
    ``make_settings`` (so configuration set after start-up still counts), and built again in
    a forked child, whose inherited sockets belong to its parent."""

    def __init__(self, make_settings: Callable[[], Settings]) -> None:
        self._make_settings = make_settings
        self._lock = threading.Lock()
        self._client: OtpflowClient | None = None
        self._pid: int | None = None

    def get(self) -> OtpflowClient:
        client, pid = self._client, os.getpid()
        if client is not None and self._pid == pid:
            return client
        with self._lock:
            if self._client is None or self._pid != pid:
                self._client = OtpflowClient(self._make_settings())
                self._pid = pid
            return self._client

    def reset(self) -> None:
        """Forget the client (settings changed, tests); the next :meth:`get` builds one."""
        with self._lock:
            client, pid = self._client, self._pid
            self._client = self._pid = None
        if client is not None and pid == os.getpid():  # never close a parent's sockets
            client.close()
