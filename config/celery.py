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
- ``worker_eta_task_limit`` caps the countdown tasks one worker holds in memory.
- Beat runs the recovery sweep every ``OTPFLOW_SWEEP_INTERVAL_SECONDS``: a worker killed with
  its countdown checks in memory delays those flows by one sweep, not by the visibility
  timeout. Brokers and Redis are reconnected to forever, with health checks.
"""

from __future__ import annotations

from typing import Any

from celery import Celery
from kombu import Exchange, Queue

from otpflow.config.settings import Settings

SEND_QUEUE = "otpflow.send"
CHECK_QUEUE = "otpflow.check"
WEBHOOK_QUEUE = "otpflow.webhook"
# The sweep has a queue of its own so a backlog of checks never delays the recovery.
SWEEP_QUEUE = "otpflow.sweep"
ALL_QUEUES = (SEND_QUEUE, CHECK_QUEUE, WEBHOOK_QUEUE, SWEEP_QUEUE)

SEND_STEP = "otpflow.send_step"
CHECK_STEP = "otpflow.check_step"
NOTIFY_SWITCH = "otpflow.notify_switch"
SWEEP = "otpflow.sweep"
RELAY_DLR = "otpflow.relay_dlr"
NOTIFY_TERMINAL = "otpflow.notify_terminal"

TASK_ROUTES = {
    SEND_STEP: {"queue": SEND_QUEUE},
    CHECK_STEP: {"queue": CHECK_QUEUE},
    NOTIFY_SWITCH: {"queue": WEBHOOK_QUEUE},
    SWEEP: {"queue": SWEEP_QUEUE},
    RELAY_DLR: {"queue": WEBHOOK_QUEUE},
    NOTIFY_TERMINAL: {"queue": WEBHOOK_QUEUE},
}

# Above the longest countdown (300 s) plus queueing, so a waiting countdown task is never
# handed to a second worker. Recovery after a crash does not wait for it: the sweeper acts.
VISIBILITY_TIMEOUT_SECONDS = 3600
ETA_TASK_LIMIT = 10_000


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
        # every countdown check waits in worker memory (~11 KB each): cap what one worker holds
        "worker_eta_task_limit": ETA_TASK_LIMIT,
        # a stop request first lets running sends finish and held messages go back
        "worker_soft_shutdown_timeout": 10.0,
        "worker_enable_soft_shutdown_on_idle": True,
        "worker_hijack_root_logger": False,
        # Flower lists tasks from worker events; "task-sent" events from every producer would
        # add a publish per enqueue and show nothing Flower needs.
        "worker_send_task_events": settings.task_events,
        "task_send_sent_event": False,
        "broker_connection_timeout": 4,
        "broker_connection_max_retries": None,  # workers reconnect by themselves, forever
        "beat_schedule": {
            "otpflow-sweep": {
                "task": SWEEP,
                "schedule": settings.sweep_interval_seconds,
                # sweeps piled up while every worker was down are dropped, not all run
                "options": {"expires": max(60.0, 10 * settings.sweep_interval_seconds)},
            }
        },
        "redis_socket_timeout": 10,
    }


def make_celery(settings: Settings, main: str = "otpflow") -> Celery:
    """A configured Celery app with no tasks: enough to enqueue by name."""
    app = Celery(main, set_as_current=False)
    app.conf.update(celery_config(settings))
    return app
