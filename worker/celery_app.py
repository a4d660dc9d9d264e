"""The worker's Celery app: ``celery -A otpflow.worker worker`` finds ``app`` here.

Importing this module is a worker process's edge: the settings are built here, once.
"""

from __future__ import annotations

import logging
import warnings
from typing import Any

from celery import Celery
from celery.concurrency import prefork
from celery.signals import worker_process_init, worker_process_shutdown, worker_ready

from otpflow.config.settings import Settings, load_settings
from otpflow.flow.contract import make_celery
from otpflow.flow.logs import configure_logging
from otpflow.worker.runtime import Runtime
from otpflow.worker.tasks import register_tasks
from otpflow.worker.timers import TimerLoop, timer_step


def create_worker_app(settings: Settings) -> Celery:
    app = make_celery(settings)
    runtime = Runtime(settings, app)
    register_tasks(app, runtime)

    def make_timer_loop() -> TimerLoop:
        # its own Redis connection: the tasks' runtime is built in each pool process
        timers = Runtime(settings, app)
        timers.warm()
        return TimerLoop(timers.store, timers.tasks, settings.timer_poll_seconds)

    app.steps["worker"].add(timer_step(make_timer_loop))

    # Warm where tasks run: in each prefork child, or in the worker process for every other
    # pool (solo also sends worker_process_init; warming twice is a no-op).
    @worker_process_init.connect(weak=False)
    def _warm_child(**_: object) -> None:
        runtime.warm()

    @worker_ready.connect(weak=False)
    def _warm_here(sender: Any, **_: object) -> None:
        if not isinstance(sender.pool, prefork.TaskPool):
            runtime.warm()

    @worker_process_shutdown.connect(weak=False)
    def _close(**_: object) -> None:
        runtime.close()

    return app


# `celery -A otpflow.worker worker` starts here: the development-default warnings become log
# lines like every other, not Python warnings with a file and line (`otpflow worker` has
# printed them already, and silences them here)
with warnings.catch_warnings(record=True) as _defaults:
    settings = load_settings()
configure_logging(settings.log_level)
for _warning in _defaults:
    logging.getLogger("otpflow.config").warning("%s", _warning.message)
app = create_worker_app(settings)
