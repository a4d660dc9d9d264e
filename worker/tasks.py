"""The three tasks of a flow (SPEC §3). Arguments are ids and counters only.

``send_step``   claim the step, send it through the channel's providers, schedule its check;
``check_step``  decide a step whose wait is over: done, or switch to the next channel;
``notify_switch`` (in :mod:`.webhooks`) tell the caller the flow switched;
``sweep``       (periodic, from beat) recover every step whose own task was lost.

Every decision is a store transition; a task that comes second (a duplicate, a redelivery,
a check racing a report) is told so by the store and does nothing.
"""

from __future__ import annotations

import logging
import random
import time
from collections import Counter
from typing import Any

from celery import Celery
from redis import RedisError

from otpflow.config.celery import (
    CHECK_STEP,
    NOTIFY_SWITCH,
    NOTIFY_TERMINAL,
    RELAY_DLR,
    SEND_STEP,
    SWEEP,
)
from otpflow.flow.models import Step
from otpflow.flow.states import DlrStatus
from otpflow.worker.providers import Provider
from otpflow.worker.providers.errors import (
    AmbiguousSend,
    PermanentProviderError,
    ProviderError,
    TransientProviderError,
)
from otpflow.worker.runtime import Enqueue, Runtime
from otpflow.worker.webhooks import notify_switch, notify_terminal, relay_dlr

logger = logging.getLogger("otpflow.worker")

BACKOFF_BASE_SECONDS = 0.5
BACKOFF_MAX_SECONDS = 8.0
NOT_ENQUEUED_RETRY = 0.2
SWEEP_BATCH = 500
SWEEP_MAX_BATCHES = 20
# a step resent again and again is queued behind a backlog, not lost: resend it rarely
MAX_RESEND_WAIT_SECONDS = 120.0


def backoff(attempt: int, retry_after: float | None = None) -> float:
    """Full-jitter exponential backoff; a provider's Retry-After is a floor."""
    ceiling = min(BACKOFF_MAX_SECONDS, BACKOFF_BASE_SECONDS * 2 ** (attempt - 1))
    return max(random.uniform(ceiling / 2, ceiling), retry_after or 0.0)


def send_step(
    rt: Runtime,
    enqueue: Enqueue,
    flow_id: str,
    step: int,
    attempt: int,
    provider_index: int,
    provider_attempt: int = 1,
) -> str:
    claim = rt.store.claim(flow_id, step, attempt, rt.send_lease_seconds)
    if claim.kind == "not_enqueued":
        # the producer has not yet confirmed the enqueue; past the grace it never will
        if time.time() < claim.number + rt.settings.sweep_grace_seconds:
            enqueue.send(
                flow_id, step, attempt, provider_index, provider_attempt, NOT_ENQUEUED_RETRY
            )
        return claim.kind
    if claim.kind != "claimed":
        logger.debug("send skipped: %s", claim.kind, extra={"flow_id": flow_id, "step": step})
        return claim.kind
    request = rt.store.request_of(flow_id)
    if request is None:
        return "missing"
    spec = request.steps[step]
    if request.otp is not None:
        code = rt.store.code_of(flow_id)
        if code is None:
            rt.store.send_error(flow_id, step, "", "the code expired before this step was sent")
            enqueue.check(flow_id, step)
            return "code_expired"
        spec = spec.with_code(code)
    providers = rt.route(spec.channel)
    if provider_index >= len(providers):
        rt.store.send_error(flow_id, step, "", f"no provider configured for {spec.channel}")
        enqueue.check(flow_id, step)
        return "no_provider"
    provider = providers[provider_index]
    try:
        message_id = _send_counted(rt, provider, spec, flow_id, step)
    except AmbiguousSend as exc:
        # the provider may have the message: at most once, so the next channel covers it
        rt.store.send_error(flow_id, step, provider.name, exc.reason)
        enqueue.check(flow_id, step)
        return "ambiguous"
    except ProviderError as exc:
        rt.store.attempt_failed(flow_id, step, provider.name, exc.reason, attempt)
        return _after_failed_attempt(
            rt,
            enqueue,
            flow_id,
            step,
            (attempt, provider_index, provider_attempt),
            len(providers),
            exc,
            claim.number,
        )
    outcome = rt.store.accepted(flow_id, step, provider.name, message_id, spec.timeout)
    if outcome.kind == "sent" and provider.accepted_is_delivered:
        delivered = rt.store.record_dlr(flow_id, step, DlrStatus.DELIVERED, provider.name)
        if delivered.notify:
            enqueue.notify_terminal(flow_id)
        return delivered.kind
    if outcome.kind == "sent":
        enqueue.check(flow_id, step, countdown=spec.timeout)
    return outcome.kind


def _send_counted(rt: Runtime, provider: Provider, spec: Step, flow_id: str, step: int) -> str:
    """One provider call, counted by what the provider answered."""
    labels = {"provider": provider.name, "channel": spec.channel}
    try:
        message_id = provider.send(spec, rt.callback(provider.name, flow_id, step))
    except ProviderError as exc:
        rt.metrics.incr("provider_sends", **labels, result=exc.kind)
        raise
    rt.metrics.incr("provider_sends", **labels, result="accepted")
    return message_id


def _after_failed_attempt(
    rt: Runtime,
    enqueue: Enqueue,
    flow_id: str,
    step: int,
    position: tuple[int, int, int],
    provider_count: int,
    exc: ProviderError,
    claimed_at: float,
) -> str:
    """Retry the same provider, fail over to the next one, or end the step.

    ``position`` is (attempt of the step, provider index, attempt on that provider). A provider
    that keeps failing transiently gets ``OTPFLOW_PROVIDER_ATTEMPTS`` tries while another
    provider is waiting; the last provider keeps trying until the step's budget is spent.
    """
    attempt, provider_index, provider_attempt = position
    has_next = provider_index + 1 < provider_count
    if isinstance(exc, TransientProviderError) and not (
        has_next and provider_attempt >= rt.settings.provider_attempts
    ):
        delay = backoff(provider_attempt, exc.retry_after)
        if time.time() + delay < claimed_at + rt.settings.send_budget_seconds:
            enqueue.send(flow_id, step, attempt + 1, provider_index, provider_attempt + 1, delay)
            return "retrying"
    assert isinstance(exc, TransientProviderError | PermanentProviderError)
    if has_next:
        enqueue.send(flow_id, step, attempt + 1, provider_index + 1)
        return "failover"
    rt.store.send_error(flow_id, step, exc.provider, exc.reason)
    enqueue.check(flow_id, step)
    return "send_error"


def check_step(rt: Runtime, enqueue: Enqueue, flow_id: str, step: int) -> str:
    outcome = rt.store.check(flow_id, step)
    if outcome.kind == "switched":
        next_step = int(outcome.detail)
        enqueue.send(flow_id, next_step)
        if outcome.notify:
            enqueue.notify_switch(flow_id, step, next_step)
    elif outcome.kind == "not_due":
        enqueue.check(flow_id, step, countdown=outcome.number)
    elif outcome.kind == "exhausted" and outcome.notify:
        enqueue.notify_terminal(flow_id)
    return outcome.kind


def sweep(rt: Runtime, enqueue: Enqueue) -> Counter[str]:
    """Recover every step overdue by more than the grace period.

    The countdown check is the fast path; this is what makes recovery independent of the
    broker's visibility timeout. Each entry is leased while it is handled, so concurrent
    sweeps share the work, and every action is a store transition, so repeating one is safe.
    """
    grace = rt.settings.sweep_grace_seconds
    lease = max(grace, rt.settings.sweep_interval_seconds, 1.0)
    done: Counter[str] = Counter()
    for _ in range(SWEEP_MAX_BATCHES):
        batch = rt.store.due(grace, lease, SWEEP_BATCH)
        for flow_id, step in batch:
            decision = rt.store.recover(flow_id, step, lease, MAX_RESEND_WAIT_SECONDS)
            if decision.kind == "resend":
                enqueue.send(flow_id, step)
                done["resent"] += 1
            elif decision.kind == "check":
                done["check:" + check_step(rt, enqueue, flow_id, step)] += 1
            else:
                done[decision.kind] += 1
        if len(batch) < SWEEP_BATCH:
            break
    if done:
        logger.info("sweep recovered steps", extra={"counts": dict(done)})
    return done


# Tasks that meet a Redis outage try again with backoff; the sweeper covers what is lost if
# even that fails (the broker may be the same Redis).
REDIS_RETRY: dict[str, Any] = {
    "autoretry_for": (RedisError,),
    "retry_backoff": 1,
    "retry_backoff_max": 10,
    "retry_jitter": True,
    "max_retries": 30,
}


def register_tasks(app: Celery, rt: Runtime) -> None:
    """Bind the task functions to a Celery app and a process runtime."""
    enqueue = Enqueue(app)

    # Sends are acknowledged on receipt: a crash mid-send must not send the step again.
    @app.task(name=SEND_STEP, acks_late=False, ignore_result=True, **REDIS_RETRY)
    def send_step_task(
        flow_id: str,
        step: int,
        attempt: int = 1,
        provider_index: int = 0,
        provider_attempt: int = 1,
    ) -> str:
        return send_step(rt, enqueue, flow_id, step, attempt, provider_index, provider_attempt)

    # Checks and notifications are idempotent: acknowledged after they ran.
    @app.task(name=CHECK_STEP, acks_late=True, ignore_result=True, **REDIS_RETRY)
    def check_step_task(flow_id: str, step: int) -> str:
        return check_step(rt, enqueue, flow_id, step)

    @app.task(name=NOTIFY_SWITCH, acks_late=True, ignore_result=True, **REDIS_RETRY)
    def notify_switch_task(flow_id: str, from_step: int, to_step: int, attempt: int = 1) -> str:
        return notify_switch(rt, enqueue, flow_id, from_step, to_step, attempt)

    @app.task(name=NOTIFY_TERMINAL, acks_late=True, ignore_result=True, **REDIS_RETRY)
    def notify_terminal_task(flow_id: str, attempt: int = 1) -> str:
        return notify_terminal(rt, enqueue, flow_id, attempt)

    @app.task(name=RELAY_DLR, acks_late=True, ignore_result=True, **REDIS_RETRY)
    def relay_dlr_task(flow_id: str, step: int, index: int, attempt: int = 1) -> str:
        return relay_dlr(rt, enqueue, flow_id, step, index, attempt)

    @app.task(name=SWEEP, acks_late=False, ignore_result=True)
    def sweep_task() -> dict[str, int]:
        return dict(sweep(rt, enqueue))
