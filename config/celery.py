"""The Celery configuration shared by producers (which only enqueue) and workers.

Task names and queues live here so a producer can enqueue step 0 by name without importing
worker code. The choices, and why:

- Queues per concern: a slow provider fills ``otpflow.send`` but never delays the timeout checks
  on ``otpflow.check`` or the caller's webhooks on ``otpflow.webhook``.
- No result backend: nobody reads task results; flow state lives in the flow store.
- Sends are acknowledged on receipt (at most once); the step claim in Redis is the real guard.
  Checks and webhooks are idempotent, so they are acknowledged late and re-run after a crash.
- ``worker_timer_precision`` 0.1 s: the default 1 s lets a countdown fire up to a second late.
- ``visibility_timeout`` above the longest countdown (300 s) plus queueing, so Redis does not
  redeliver a waiting countdown task to a second worker.
"""

from __future__ import annotations

from typing import Any

from celery import Celery
from kombu import Exchange, Queue

from otpflow.config.settings import Settings

SEND_QUEUE = "otpflow.send"
CHECK_QUEUE = "otpflow.check"
WEBHOOK_QUEUE = "otpflow.webhook"
ALL_QUEUES = (SEND_QUEUE, CHECK_QUEUE, WEBHOOK_QUEUE)

SEND_STEP = "otpflow.send_step"
CHECK_STEP = "otpflow.check_step"
NOTIFY_SWITCH = "otpflow.notify_switch"

TASK_ROUTES = {
    SEND_STEP: {"queue": SEND_QUEUE},
    CHECK_STEP: {"queue": CHECK_QUEUE},
    NOTIFY_SWITCH: {"queue": WEBHOOK_QUEUE},
}

VISIBILITY_TIMEOUT_SECONDS = 3600


def celery_config(settings: Settings) -> dict[str, Any]:
    return {
        "broker_url": settings.broker_url,
        "broker_connection_retry_on_startup": True,
        "broker_transport_options": {
            "visibility_timeout": VISIBILITY_TIMEOUT_SECONDS,
            "health_check_interval": 10,
        },
        "broker_heartbeat": 10,
        "task_serializer": "json",
        "accept_content": ["json"],
        "result_backend": None,
        "task_ignore_result": True,
        # one direct exchange per queue: a routing key reaches exactly one queue, on any broker
        "task_queues": [
            Queue(name, Exchange(name, type="direct"), routing_key=name) for name in ALL_QUEUES
        ],
        "task_default_queue": SEND_QUEUE,
        "task_default_exchange": SEND_QUEUE,
        "task_default_routing_key": SEND_QUEUE,
        "task_routes": TASK_ROUTES,
        "task_acks_late": False,
        "task_acks_on_failure_or_timeout": True,
        "worker_prefetch_multiplier": 4,
        "worker_timer_precision": 0.1,
        "worker_hijack_root_logger": False,
        # Flower lists tasks from worker events; "task-sent" events from every producer would
        # add a publish per enqueue and show nothing Flower needs.
        "worker_send_task_events": settings.task_events,
        "task_send_sent_event": False,
        "broker_connection_timeout": 4,
        "redis_socket_timeout": 10,
    }


def make_celery(settings: Settings, main: str = "otpflow") -> Celery:
    """A configured Celery app with no tasks: enough to enqueue by name."""
    app = Celery(main, set_as_current=False)
    app.conf.update(celery_config(settings))
    return app
