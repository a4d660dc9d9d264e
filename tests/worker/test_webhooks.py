"""Webhook delivery outcomes, counted per event and result (the HTTP side is a MockTransport)."""

from __future__ import annotations

import httpx
import redis

from otpflow.config.settings import Settings
from otpflow.flow import metrics
from otpflow.worker.runtime import Runtime
from otpflow.worker.webhooks import deliver


def runtime(redis_client: redis.Redis, answers: list[int], max_attempts: int) -> Runtime:
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(answers.pop(0))

    rt = Runtime(
        Settings(secret="s3cret", allow_private_webhooks=True, webhook_max_attempts=max_attempts)
    )
    rt.__dict__["redis"] = redis_client
    rt.__dict__["http"] = httpx.Client(transport=httpx.MockTransport(answer))
    return rt


def test_each_delivery_attempt_is_counted_by_its_result(redis_client: redis.Redis) -> None:
    rt = runtime(redis_client, [500, 200, 503, 503], max_attempts=2)
    retries: list[float] = []
    record = {"type": "webhook", "event": "channel_switch", "step": 0}

    def post(attempt: int, url: str = "http://127.0.0.1:9/hook") -> str:
        return deliver(rt, "f1", url, {"a": 1}, "f1:switch:0", record, attempt, retries.append)

    assert [post(1), post(2), post(1), post(2)] == ["retrying", "delivered", "retrying", "gave_up"]
    assert post(1, url="ftp://example.org/") == "refused"
    relay = deliver(
        rt, "f1", "ftp://x/", {}, "f1:dlr:0:0", {"type": "relay", "step": 0}, 1, retries.append
    )
    assert relay == "refused"
    values = metrics.Metrics(redis_client).read()
    counted = {
        (labels["event"], labels["result"]): value
        for labels, value in metrics.series(values, "webhook_deliveries")
    }
    assert counted == {
        ("channel_switch", "retrying"): 2,
        ("channel_switch", "delivered"): 1,
        ("channel_switch", "gave_up"): 1,
        ("channel_switch", "refused"): 1,
        ("relay", "refused"): 1,
    }
    assert len(retries) == 2
