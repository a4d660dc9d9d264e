"""The Celery app of `benchmarks/ceiling.py`: OTPflow's own Celery settings and one task that
does nothing but count itself, so the ceiling is Celery's (publish, consume, ack, events) on
this machine, not OTPflow's.

    celery -A noop_app worker --pool threads --concurrency 4    # from benchmarks/
"""

from __future__ import annotations

import os

import redis

from otpflow.config.settings import Settings
from otpflow.flow.contract import make_celery

BROKER_URL = os.environ.get("CEILING_BROKER_URL", "redis://127.0.0.1:6379/10")
COUNTER_URL = os.environ.get("CEILING_COUNTER_URL", "redis://127.0.0.1:6379/11")
COUNTER = "ceiling:done"

app = make_celery(Settings(broker_url=BROKER_URL, redis_url=COUNTER_URL), main="ceiling")
counter = redis.Redis.from_url(COUNTER_URL)


@app.task(name="ceiling.noop", queue="otpflow.send")
def noop(index: int) -> None:
    counter.incr(COUNTER)
