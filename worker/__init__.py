"""The running system: Celery app and tasks, provider adapters, DLR intake, the HTTP API and
the CLI. ``celery -A otpflow.worker worker`` and ``celery -A otpflow.worker flower`` work; the
app (and the settings it needs) is built only when something asks for ``app``.
"""

from typing import Any


def __getattr__(name: str) -> Any:
    if name in ("app", "celery"):
        from otpflow.worker.celery_app import app

        return app
    raise AttributeError(name)
