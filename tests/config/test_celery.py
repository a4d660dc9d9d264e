"""Each task goes to its own queue, through its own exchange, on any broker."""

from __future__ import annotations

import pytest

from otpflow.config.celery import (
    CHECK_QUEUE,
    CHECK_STEP,
    NOTIFY_SWITCH,
    SEND_QUEUE,
    SEND_STEP,
    WEBHOOK_QUEUE,
    make_celery,
)
from otpflow.config.settings import Settings


@pytest.mark.parametrize(
    ("task", "queue"),
    [(SEND_STEP, SEND_QUEUE), (CHECK_STEP, CHECK_QUEUE), (NOTIFY_SWITCH, WEBHOOK_QUEUE)],
)
def test_task_routes_to_exactly_its_queue(task: str, queue: str) -> None:
    app = make_celery(Settings(broker_url="memory://"))
    route = app.amqp.router.route({}, task)["queue"]
    assert route.name == queue
    assert route.exchange.name == queue and route.routing_key == queue
    # no other queue is bound with this routing key on this exchange
    others = [q for q in app.amqp.queues.values() if q.name != queue]
    assert all((q.exchange.name, q.routing_key) != (queue, queue) for q in others)


def test_workload_choices() -> None:
    conf = make_celery(Settings(broker_url="memory://")).conf
    assert conf.result_backend is None and conf.task_ignore_result
    assert conf.worker_timer_precision <= 0.1
    assert conf.broker_transport_options["visibility_timeout"] > 300
    assert conf.task_serializer == "json"
