"""The tasks of a flow (SPEC §3). Arguments are ids and counters only.

``send_step``   claim the step, send it through the channel's providers; the transition that
                records the acceptance writes the step's timer (see :mod:`.timers`);
``notify_switch``, ``notify_terminal``, ``relay_dlr`` (in :mod:`.webhooks`) tell the caller.

Timeouts and recovery are not tasks: the timer loop of every worker decides them.
Every decision is a store transition; a task that comes second (a duplicate, a redelivery,
a send racing a report) is told so by the store and does nothing.
"""

from __future__ import annotations

import logging
import random
import time
from typing import Any

from celery import Celery, Task
from redis import RedisError

from otpflow.flow.contract import NOTIFY_SWITCH, NOTIFY_TERMINAL, RELAY_DLR, SEND_STEP, Tasks
from otpflow.flow.models import FlowRequest, Step
from otpflow.flow.outcomes import Claim
from otpflow.flow.routing import NO_NOTE, RouteNote
from otpflow.flow.states import DlrStatus, Kind
from otpflow.providers import Provider
from otpflow.providers.errors import (
    AmbiguousSend,
    PermanentProviderError,
    ProviderError,
    ProviderRejected,
    TransientProviderError,
)
from otpflow.worker.http import deadline
from otpflow.worker.runtime import Runtime
from otpflow.worker.webhooks import notify_switch, notify_terminal, relay_dlr

logger = logging.getLogger("otpflow.worker")

# How long a send that came before its producer's confirmation waits for it (it usually
# follows within milliseconds); after that the producer publishes the send again.
EARLY_SEND_WAIT_SECONDS = 0.5
BACKOFF_BASE_SECONDS = 0.5
BACKOFF_MAX_SECONDS = 8.0


def backoff(attempt: int, retry_after: float | None = None) -> float:
    """Full-jitter exponential backoff; a provider's Retry-After is a floor."""
    ceiling = min(BACKOFF_MAX_SECONDS, BACKOFF_BASE_SECONDS * 2 ** (attempt - 1))
    return max(random.uniform(ceiling / 2, ceiling), retry_after or 0.0)


def send_step(
    rt: Runtime,
    enqueue: Tasks,
    flow_id: str,
    step: int,
    attempt: int,
    provider_index: int,
    provider_attempt: int = 1,
) -> Kind:
    claim = _claim(rt, flow_id, step, attempt)
    claimed = time.monotonic()
    # still "not_enqueued": the producer publishes the send again as it confirms (or the flow
    # is discarded, never confirmed)
    if claim.kind != Kind.CLAIMED:
        logger.debug("send skipped: %s", claim.kind, extra={"flow_id": flow_id, "step": step})
        return claim.kind
    if claim.request is None:
        return Kind.MISSING
    spec = _step_to_send(rt, enqueue, flow_id, step, claim.request, claim.code)
    if isinstance(spec, Kind):
        return spec
    route = rt.route(spec.channel, spec.data.country, claim.route)
    if provider_index >= len(route.providers):
        reason = f"no provider configured for {spec.channel}"
        _step_failed(rt, enqueue, flow_id, step, "", reason)
        return Kind.NO_PROVIDER
    provider = rt.providers[route.providers[provider_index]]
    note = route.note(provider_index)  # why this provider: on the step's timeline
    try:
        message_id = _send_counted(rt, provider, spec, flow_id, step)
    except AmbiguousSend as exc:
        # the provider may have the message: at most once, so the next channel covers it
        _step_failed(rt, enqueue, flow_id, step, provider.name, exc.reason, exc, note)
        return Kind.AMBIGUOUS
    except ProviderError as exc:
        failure = routing_failure(exc)
        rt.store.attempt_failed(flow_id, step, provider.name, exc.reason, attempt, failure, note)
        return _after_failed_attempt(
            rt,
            enqueue,
            flow_id,
            step,
            (attempt, provider_index, provider_attempt),
            len(route.providers),
            exc,
            claim.number + time.monotonic() - claimed,
        )
    # the same transition writes the step's timer: its DLR timeout is now in Redis
    outcome = rt.store.accepted(flow_id, step, provider.name, message_id, spec.timeout, note)
    if outcome.kind == Kind.SENT and provider.accepted_is_delivered:
        delivered = rt.store.record_dlr(flow_id, step, DlrStatus.DELIVERED, provider.name)
        enqueue.follow_up(delivered, flow_id, step)
        return delivered.kind
    return outcome.kind


def routing_failure(exc: ProviderError) -> str:
    """The routing counter of a failed attempt: ``timeout`` (no answer: the provider may have
    the message), ``rejected`` (this message refused: no mark against the provider's health)
    or ``error``."""
    if isinstance(exc, AmbiguousSend):
        return "timeout"
    if isinstance(exc, ProviderRejected):
        return "rejected"
    return "error"


def _claim(rt: Runtime, flow_id: str, step: int, attempt: int) -> Claim:
    """The step, claimed for this send; a send that overtook its producer's confirmation
    (which follows within moments) waits for it here, rather than have the producer publish
    the send again."""
    claim = rt.store.claim(flow_id, step, attempt, rt.send_lease_seconds)
    if claim.kind == Kind.NOT_ENQUEUED:
        rt.store.wait_confirmed(flow_id, EARLY_SEND_WAIT_SECONDS)
        claim = rt.store.claim(flow_id, step, attempt, rt.send_lease_seconds, waited=True)
    return claim


def _step_to_send(
    rt: Runtime,
    enqueue: Tasks,
    flow_id: str,
    step: int,
    request: FlowRequest,
    code: str | None,
) -> Step | Kind:
    """The step as it goes out, its code filled in; or, when it cannot go, the outcome kind
    (the flow has then moved on to its next channel)."""
    spec = request.steps[step]
    if request.otp is None:
        return spec
    if code is None:
        _step_failed(rt, enqueue, flow_id, step, "", "the code expired before this step was sent")
        return Kind.CODE_EXPIRED
    rendered = _render(spec, code)
    if rendered is None:
        # the error is never logged or raised on: its text would carry the code
        reason = "the message is not valid with its code filled in"
        _step_failed(rt, enqueue, flow_id, step, "", reason)
        return Kind.RENDER_FAILED
    return rendered


def _render(spec: Step, code: str) -> Step | None:
    """The step with its code in place, or None if that breaks the payload's rules (intake
    checks the longest code, so only a code that does not match the request gets here)."""
    try:
        return spec.with_code(code)
    except ValueError:  # UnrenderableStep, or anything else pydantic may raise one day
        return None


def _step_failed(
    rt: Runtime,
    enqueue: Tasks,
    flow_id: str,
    step: int,
    provider: str,
    reason: str,
    attempt: ProviderError | None = None,
    note: RouteNote = NO_NOTE,
) -> None:
    """The step cannot be sent: the flow moves on to its next channel now. ``attempt``: the
    provider's failed attempt, if no ``attempt_failed`` counted it."""
    failure = routing_failure(attempt) if attempt is not None else ""
    outcome = rt.store.send_error(flow_id, step, provider, reason, failure, note)
    enqueue.follow_up(outcome, flow_id, step)


def _send_counted(rt: Runtime, provider: Provider, spec: Step, flow_id: str, step: int) -> str:
    """One provider call, counted by what the provider answered (an acceptance is counted by
    the transition that records it, in the same round trip). The call ends within the provider
    timeout in total, however slowly the provider answers: the send lease counts on it."""
    try:
        with deadline(rt.settings.provider_timeout_seconds):
            return provider.send(spec, rt.callback(provider.name, flow_id, step))
    except ProviderError as exc:
        labels = {"provider": provider.name, "channel": spec.channel}
        rt.store.metrics.incr("provider_sends", **labels, result=exc.kind)
        raise


def _after_failed_attempt(
    rt: Runtime,
    enqueue: Tasks,
    flow_id: str,
    step: int,
    position: tuple[int, int, int],
    provider_count: int,
    exc: ProviderError,
    spent: float,
) -> Kind:
    """Retry the same provider, fail over to the next one, or end the step.

    ``position`` is (attempt of the step, provider index, attempt on that provider). A provider
    that keeps failing transiently gets ``OTPFLOW_PROVIDER_ATTEMPTS`` tries while another
    provider is waiting; the last provider keeps trying until the step's budget is spent.
    ``spent`` is how many seconds the step has been sending (since its first claim).
    """
    attempt, provider_index, provider_attempt = position
    has_next = provider_index + 1 < provider_count
    if isinstance(exc, TransientProviderError) and not (
        has_next and provider_attempt >= rt.settings.provider_attempts
    ):
        delay = backoff(provider_attempt, exc.retry_after)
        if spent + delay < rt.settings.send_budget_seconds:
            enqueue.send(flow_id, step, attempt + 1, provider_index, provider_attempt + 1, delay)
            return Kind.RETRYING
    assert isinstance(exc, TransientProviderError | PermanentProviderError)
    if has_next:
        enqueue.send(flow_id, step, attempt + 1, provider_index + 1)
        return Kind.FAILOVER
    _step_failed(rt, enqueue, flow_id, step, exc.provider, exc.reason)
    return Kind.SEND_ERROR


# Tasks that meet a Redis outage try again with backoff; the timers cover what is lost if even
# that fails (the broker may be the same Redis).
REDIS_RETRY: dict[str, Any] = {
    "autoretry_for": (RedisError,),
    "retry_backoff": 1,
    "retry_backoff_max": 10,
    "retry_jitter": True,
    "max_retries": 30,
}


def register_tasks(app: Celery, rt: Runtime) -> None:
    """Bind the task functions to a Celery app and a process runtime."""
    enqueue = rt.tasks

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

    # Calls to a caller's URL run at least once: each stays in the timers index until it has
    # run (a worker killed meanwhile leaves it there, and it is published again), and is
    # acknowledged late (RabbitMQ hands it to another worker at once). What ran is named by
    # the message's own arguments, so they are spelled only in the task contract.
    def ran(task: Task) -> None:
        enqueue.ran(task.name, list(task.request.args))

    @app.task(name=NOTIFY_SWITCH, bind=True, acks_late=True, ignore_result=True, **REDIS_RETRY)
    def notify_switch_task(
        task: Task, flow_id: str, from_step: int, to_step: int, attempt: int = 1
    ) -> str:
        result = notify_switch(rt, enqueue, flow_id, from_step, to_step, attempt)
        ran(task)
        return result

    @app.task(name=NOTIFY_TERMINAL, bind=True, acks_late=True, ignore_result=True, **REDIS_RETRY)
    def notify_terminal_task(task: Task, flow_id: str, attempt: int = 1) -> str:
        result = notify_terminal(rt, enqueue, flow_id, attempt)
        ran(task)
        return result

    @app.task(name=RELAY_DLR, bind=True, acks_late=True, ignore_result=True, **REDIS_RETRY)
    def relay_dlr_task(task: Task, flow_id: str, step: int, index: int, attempt: int = 1) -> str:
        result = relay_dlr(rt, enqueue, flow_id, step, index, attempt)
        ran(task)
        return result
