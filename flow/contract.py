"""The task contract: every OTPflow task's name, queue and arguments, spelled once, and the
Celery app that enqueues them by name (:func:`make_celery`).

Producers, the API's DLR intake, the worker's tasks and its timer loop all enqueue through
:class:`Tasks`, so no one writes a task's argument order twice. Arguments are ids and counters
only: no recipient, address or text ever reaches the broker or Flower.

A task due later (a retry with backoff) is not a broker countdown: a countdown waits in a
worker's memory, stops the worker consuming at ``worker_eta_task_limit``, and is dropped when
the broker connection drops. It is written to the Redis timers index instead
(:meth:`FlowStore.later`), and the workers' timer loop publishes it when it is due.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import Celery
from kombu.exceptions import KombuError

from otpflow.config.celery import SEND_QUEUE, WEBHOOK_QUEUE, celery_config
from otpflow.config.settings import Settings
from otpflow.flow.outcomes import Outcome
from otpflow.flow.states import Kind
from otpflow.flow.store import FlowStore

SEND_STEP = "otpflow.send_step"
NOTIFY_SWITCH = "otpflow.notify_switch"
RELAY_DLR = "otpflow.relay_dlr"
NOTIFY_TERMINAL = "otpflow.notify_terminal"

# Each task's queue: a slow provider fills the send queue but never delays a caller's webhooks.
TASK_ROUTES = {
    SEND_STEP: {"queue": SEND_QUEUE},
    NOTIFY_SWITCH: {"queue": WEBHOOK_QUEUE},
    RELAY_DLR: {"queue": WEBHOOK_QUEUE},
    NOTIFY_TERMINAL: {"queue": WEBHOOK_QUEUE},
}

# Every task's arguments, in order: the one place they are spelled. The worker's task functions
# take exactly these, and so do the helpers of :class:`Tasks` (tests/worker/test_celery_app.py
# and tests/flow/test_contract.py hold them to it).
ARGUMENTS: dict[str, tuple[str, ...]] = {
    SEND_STEP: ("flow_id", "step", "attempt", "provider_index", "provider_attempt"),
    NOTIFY_SWITCH: ("flow_id", "from_step", "to_step", "attempt"),
    NOTIFY_TERMINAL: ("flow_id", "attempt"),
    RELAY_DLR: ("flow_id", "step", "index", "attempt"),
}
TASK_NAMES = frozenset(ARGUMENTS)
# Calls to a caller's URL run at least once: each stays in the timers index, leased, until it
# has run (:meth:`Tasks.ran`), so one lost with a killed worker, or never delivered by the
# broker, is published again when its lease runs out. A send runs at most once: the step's own
# timer covers a lost one.
AT_LEAST_ONCE = frozenset({NOTIFY_SWITCH, NOTIFY_TERMINAL, RELAY_DLR})
REPUBLISH_DELAY_SECONDS = 1.0

logger = logging.getLogger("otpflow.tasks")


def make_celery(settings: Settings, main: str = "otpflow") -> Celery:
    """A configured Celery app that routes each task above to its queue, with no tasks of its
    own: enough to enqueue by name (the worker registers its tasks on one)."""
    app = Celery(main, set_as_current=False)
    app.conf.update(celery_config(settings), task_routes=TASK_ROUTES)
    return app


def arguments(name: str, **values: Any) -> list[Any]:
    """A task's arguments in the order of :data:`ARGUMENTS` (every one named, no other)."""
    if values.keys() != set(ARGUMENTS[name]):
        raise TypeError(f"{name} takes {ARGUMENTS[name]}, not {tuple(values)}")
    return [values[argument] for argument in ARGUMENTS[name]]


class Tasks:
    """Enqueue OTPflow's tasks: now through the broker, or ``delay`` seconds from now through
    the timers index. ``lease_seconds``: how long a published at-least-once task may wait and
    run before it is published again. ``publish_options`` go to every publish (the producers'
    retry policy)."""

    def __init__(
        self,
        celery: Celery,
        store: FlowStore,
        lease_seconds: float,
        publish_options: dict[str, Any] | None = None,
    ) -> None:
        self.celery = celery
        self.store = store
        self.lease_seconds = lease_seconds
        self.publish_options = publish_options or {}

    def send(
        self,
        flow_id: str,
        step: int,
        attempt: int = 1,
        provider_index: int = 0,
        provider_attempt: int = 1,
        delay: float = 0,
    ) -> None:
        args = arguments(
            SEND_STEP,
            flow_id=flow_id,
            step=step,
            attempt=attempt,
            provider_index=provider_index,
            provider_attempt=provider_attempt,
        )
        self.submit(SEND_STEP, args, delay)

    def first_send(self, flow_id: str) -> None:
        """Publish a new flow's first send now; a broker error is raised (a producer answers
        503, and the flow it never confirmed is discarded)."""
        args = arguments(
            SEND_STEP, flow_id=flow_id, step=0, attempt=1, provider_index=0, provider_attempt=1
        )
        self.publish(SEND_STEP, args)

    def notify_switch(
        self, flow_id: str, from_step: int, to_step: int, attempt: int = 1, delay: float = 0
    ) -> None:
        args = arguments(
            NOTIFY_SWITCH, flow_id=flow_id, from_step=from_step, to_step=to_step, attempt=attempt
        )
        self.submit(NOTIFY_SWITCH, args, delay)

    def notify_terminal(self, flow_id: str, attempt: int = 1, delay: float = 0) -> None:
        self.submit(
            NOTIFY_TERMINAL, arguments(NOTIFY_TERMINAL, flow_id=flow_id, attempt=attempt), delay
        )

    def relay_dlr(
        self, flow_id: str, step: int, index: int, attempt: int = 1, delay: float = 0
    ) -> None:
        args = arguments(RELAY_DLR, flow_id=flow_id, step=step, index=index, attempt=attempt)
        self.submit(RELAY_DLR, args, delay)

    def follow_up(self, outcome: Outcome, flow_id: str, step: int) -> None:
        """Enqueue what a transition of ``step`` set in motion: the next step's send and the
        switch webhook, or the terminal webhook of a flow that ended."""
        if outcome.kind == Kind.SWITCHED:
            next_step = int(outcome.detail)
            self.send(flow_id, next_step)
            if outcome.notify:
                self.notify_switch(flow_id, step, next_step)
        elif outcome.notify:  # only a switch or an end carries the flag
            self.notify_terminal(flow_id)

    def submit(self, name: str, args: list[Any], delay: float = 0) -> None:
        if delay > 0:
            self.store.later(name, args, delay)
            return
        if name in AT_LEAST_ONCE:
            # kept until it ran: published again after its lease if it never does
            self.store.later(name, args, self.lease_seconds)
        try:
            self.publish(name, args)
        except (KombuError, OSError):
            # the broker is away but the flow's state moved on: publish it from the timers
            # index once the broker is back, rather than lose it
            logger.warning("broker unreachable: task kept in the timers index")
            self.store.later(name, args, REPUBLISH_DELAY_SECONDS)

    def ran(self, name: str, args: list[Any]) -> None:
        """An at-least-once task has run: it is not published again."""
        self.store.forget(name, args)

    def publish(self, name: str, args: list[Any]) -> None:
        """Publish now; a broker error is the caller's to handle."""
        self.celery.send_task(name, args=args, **self.publish_options)
