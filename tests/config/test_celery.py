"""Each task goes to its own queue, through its own exchange, on any broker."""

from __future__ import annotations

import pytest

from otpflow.config.celery import SEND_QUEUE, WEBHOOK_QUEUE
from otpflow.config.settings import Settings
from otpflow.flow.contract import NOTIFY_SWITCH, NOTIFY_TERMINAL, RELAY_DLR, SEND_STEP, make_celery


@pytest.mark.parametrize(
    ("task", "queue"),
    [
        (SEND_STEP, SEND_QUEUE),
        (NOTIFY_SWITCH, WEBHOOK_QUEUE),
        (NOTIFY_TERMINAL, WEBHOOK_QUEUE),
        (RELAY_DLR, WEBHOOK_QUEUE),
    ],
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
    # the timers cover what a killed worker held: no unacked bookkeeping on the Redis broker
    assert conf.broker_transport_options["ack_emulation"] is False
    assert not conf.beat_schedule, "no periodic task: the workers' timer loop recovers"
    assert conf.task_serializer == "json"
    # task events cost about a fifth of a worker's CPU: sent only once a monitor asks (Flower
    # does, every 5 s: tests/integration/test_flower.py), or when a deployment says so
    assert conf.worker_send_task_events is False and conf.task_send_sent_event is False
    assert make_celery(Settings(broker_url="memory://", task_events=True)).conf[
        "worker_send_task_events"
    ]
