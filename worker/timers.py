"""The timer loop: every worker process runs one, beside the queues it consumes.

Every timeout and every recovery is an entry in one Redis sorted set (``keys.timers()``),
scored by when it is due in Redis time and written by the same transition that makes it
necessary:

- a step's send lease (claimed, not yet accepted) and its DLR timeout (accepted);
- a step's grace period after it became current: if its send was never claimed (lost with a
  killed worker, or a producer that never confirmed the flow), it is sent again or discarded;
- a task due later: a provider retry with backoff, a webhook retry, a send waiting for its
  producer's confirmation.

The loop takes due entries with an atomic take-and-lease (so N workers share them and none is
taken twice), decides each step in one store transition, and publishes what follows. A worker
therefore holds no waiting work in memory, a backlog on a queue never delays a timer, and no
other process (beat) is needed for any guarantee. A worker killed while holding taken entries
delays them by one lease, the grace period.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable
from typing import Any

from celery import bootsteps
from kombu.exceptions import KombuError
from redis import RedisError

from otpflow.flow.contract import AT_LEAST_ONCE, TASK_NAMES, Tasks
from otpflow.flow.outcomes import Timer
from otpflow.flow.states import Kind
from otpflow.flow.store import FlowStore

logger = logging.getLogger("otpflow.timers")

BATCH = 200
ERROR_PAUSE_SECONDS = 1.0
# decisions worth a log line: a lost send recovered, not a step that simply timed out
RECOVERIES = frozenset({Kind.RESEND, Kind.DISCARDED})


def pause(next_due_in: float | None, poll_seconds: float) -> float:
    """How long to wait before the next take: until the next timer is due, but never longer
    than the poll interval (a timer written meanwhile may be due sooner)."""
    if next_due_in is None:
        return poll_seconds
    return min(max(next_due_in, 0.0), poll_seconds)


class TimerLoop:
    """Takes due timers from Redis and acts on them; one per worker process."""

    def __init__(
        self, store: FlowStore, tasks: Tasks, poll_seconds: float, batch: int = BATCH
    ) -> None:
        self.store = store
        self.tasks = tasks
        self.poll_seconds = poll_seconds
        self.batch = batch

    def run_once(self) -> tuple[Counter[str], float]:
        """Act on every timer due now (at most one batch); return what was done and how long
        to wait before the next pass."""
        done: Counter[str] = Counter()
        timers, next_due_in = self.store.take_due(self.batch, self.store.grace_seconds)
        for timer in timers:
            done[self._fire_step(timer) if timer.is_step else self._fire_task(timer)] += 1
        if len(timers) == self.batch:
            return done, 0.0  # more are due
        return done, pause(next_due_in, self.poll_seconds)

    def _fire_step(self, timer: Timer) -> str:
        outcome = self.store.check(timer.flow_id, timer.step)
        if outcome.kind == Kind.RESEND:
            self.tasks.send(timer.flow_id, timer.step)
        else:
            self.tasks.follow_up(outcome, timer.flow_id, timer.step)
        return outcome.kind

    def _fire_task(self, timer: Timer) -> str:
        if timer.task not in TASK_NAMES:  # an older version's, or a stray write: never publish
            logger.warning("unknown entry in the timers index dropped")
            self.store.timer_done(timer)
            return "dropped"
        # a broker error leaves the timer taken: it is published again after its lease
        self.tasks.publish(timer.task, list(timer.args))
        if timer.task in AT_LEAST_ONCE:
            # kept, leased, until the task says it ran (unless it already did)
            self.store.later(timer.task, list(timer.args), self.tasks.lease_seconds, True)
        else:
            self.store.timer_done(timer)
        return "published"

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                done, wait = self.run_once()
            except (RedisError, KombuError, OSError) as exc:
                # Redis or the broker is away: the taken timers come back after their lease
                logger.warning("timer loop paused: %s", type(exc).__name__)
                wait = ERROR_PAUSE_SECONDS
            except Exception:
                # never let the thread die quietly: this worker's timers would stop for good
                logger.exception("timer loop pass failed")
                wait = ERROR_PAUSE_SECONDS
            else:
                recovered = {kind: n for kind, n in done.items() if kind in RECOVERIES}
                if recovered:
                    logger.info("timers recovered steps", extra={"counts": recovered})
            stop.wait(wait)


class TimerThread:
    """Runs a :class:`TimerLoop` in a daemon thread, with its own Redis connection."""

    def __init__(self, loop: TimerLoop) -> None:
        self.loop = loop
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self.loop.run, args=(self._stop,), name="otpflow-timers", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)


def timer_step(make_loop: Callable[[], TimerLoop]) -> type[bootsteps.StartStopStep]:
    """A worker bootstep that starts the timer loop with the worker and stops it with it.

    It runs in the worker's main process, after the pool started (a prefork pool has forked
    its children by then, so none inherits the loop's thread)."""

    class TimerStep(bootsteps.StartStopStep):
        label = "OTPflow timers"
        requires = ("celery.worker.components:Pool",)

        def create(self, parent: Any) -> TimerThread:
            return TimerThread(make_loop())

    return TimerStep
