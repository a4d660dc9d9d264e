"""The Celery configuration shared by producers (which only enqueue) and workers.

The queues and the broker's settings live here; the task names, and which queue each goes on,
are the task contract's (``otpflow.flow.contract``, which builds the Celery app with both: this
floor imports nothing of OTPflow). The choices, and why:

- Queues per concern: a slow provider fills ``otpflow.send`` but never delays the caller's
  webhooks on ``otpflow.webhook``. Timeouts are not tasks at all: each worker's timer loop
  (``otpflow.worker.timers``) takes them from Redis, so no queue's backlog delays them.
- No countdown or ETA message, ever: a countdown waits in the worker's memory, stops the worker
  consuming at ``worker_eta_task_limit``, comes back only after ``visibility_timeout`` when
  the worker is killed, and is dropped when the broker connection drops. Everything due later
  is in the Redis timers index (``otpflow.flow.contract``).
- No result backend: nobody reads task results; flow state lives in the flow store.
- Sends are acknowledged on receipt (at most once); the step claim in Redis is the real guard,
  and a send lost with a killed worker is covered by its step's timer. Webhooks run at least
  once: each stays in the timers index until it ran, and is acknowledged late.
- On the Redis broker, no "unacked" bookkeeping (``ack_emulation`` off): the timers above
  already cover a message a killed worker held, and the bookkeeping cost about a fifth of a
  worker's CPU. Brokers and Redis are reconnected to forever, with health checks.
"""

from __future__ import annotations

from typing import Any

from kombu import Exchange, Queue

from otpflow.config.settings import Settings

SEND_QUEUE = "otpflow.send"
WEBHOOK_QUEUE = "otpflow.webhook"
ALL_QUEUES = (SEND_QUEUE, WEBHOOK_QUEUE)


def celery_config(settings: Settings) -> dict[str, Any]:
    """Everything of a Celery app's configuration but its task routes (the contract's)."""
    return {
        "broker_url": settings.broker_url,
        "broker_connection_retry_on_startup": True,
        "broker_transport_options": {
            "health_check_interval": 10,
            # No "unacked" bookkeeping on the Redis broker (two round trips and a copy of every
            # message, about a fifth of a worker's CPU per flow): sends run at most once and a
            # lost one is covered by its step's timer; webhooks stay in the timers index until
            # they ran (otpflow.flow.contract). RabbitMQ ignores this option.
            "ack_emulation": False,
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
        "task_acks_late": False,
        "task_acks_on_failure_or_timeout": True,
        # a message a killed worker held is not restored: its step's timer or its webhook's lease
        # covers it
        "worker_prefetch_multiplier": 4,
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
        "redis_socket_timeout": 10,
    }
