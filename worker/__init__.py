"""The worker process: the Celery app, the tasks, the caller webhooks and the timer loop.
``celery -A otpflow.worker worker`` and ``celery -A otpflow.worker flower`` work; the app (and
the settings it needs) is built only when something asks for ``app``.
"""

from typing import Any


def __getattr__(name: str) -> Any:
    if name in ("app", "celery"):
        from otpflow.worker.celery_app import app

        return app
    raise AttributeError(name)
