"""The router against a real Redis: the order of a channel's providers per message, the
preferred provider and its hysteresis, exploration, breakers, static mode, channelOrder auto."""

from __future__ import annotations

import itertools
import random

import pytest
import redis

from otpflow.config.routing import RoutingSettings
from otpflow.config.settings import RoutesSettings
from otpflow.flow import keys
from otpflow.flow.metrics import Metrics, field
from otpflow.flow.models import FlowRequest
from otpflow.flow.router import Router
from otpflow.flow.routing import stats_field
from otpflow.flow.routing_store import RoutingStore

ROUTES = RoutesSettings(sms=["zixflow", "messageflow"], whatsapp=["zixflow"])
FAST = {"refresh_seconds": 1e-9, "window_seconds": 600}  # read afresh every time


def router(
    redis_client: redis.Redis, seed: int = 16, routes: RoutesSettings = ROUTES, **settings: object
) -> Router:
    routing = RoutingSettings(**{**FAST, **settings})  # type: ignore[arg-type]
    return Router(RoutingStore(redis_client), routing, routes, random.Random(seed))


def add(
    redis_client: redis.Redis,
    provider: str,
    counts: dict[str, int],
    channel: str = "sms",
    country: str = "IN",
    age: int = 0,
) -> None:
    """Counts into the current bucket (or one ``age`` buckets before it), as the store's
    transitions write them."""
    seconds, _ = redis_client.time()
    width = RoutingSettings(**FAST).bucket_seconds  # type: ignore[arg-type]
    bucket = keys.routing_stats(int(seconds // width) - age)
    for counter, value in counts.items():
        redis_client.hincrby(bucket, stats_field(provider, channel, country, counter), value)


def first_choices(rt: Router, count: int, country: str = "IN") -> list[str]:
    return [rt.route("sms", country).providers[0] for _ in range(count)]


def test_with_no_data_the_configured_order_stands(redis_client: redis.Redis) -> None:
    rt = router(redis_client, exploration_share=0)
    route = rt.route("sms", "IN")
    assert route.providers == ("zixflow", "messageflow")
    assert route.reasons[0] == {
        "mode": "adaptive",
        "policy": "quality",
        "country": "IN",
        "rank": 1,
        "score": route.reasons[0]["score"],
        "preferred": True,
        "breaker": "closed",
        "explored": False,
        "probe": False,
    }
    # one provider: nothing to choose
    only = rt.route("whatsapp", "IN")
    assert only.providers == ("zixflow",) and only.reasons[0]["only"] is True


def test_a_provider_that_stops_delivering_in_one_country_is_demoted_there_only(
    redis_client: redis.Redis,
) -> None:
    rt = router(redis_client, exploration_share=0)
    assert rt.route("sms", "IN").providers[0] == "zixflow"  # the preferred one is stored
    add(redis_client, "zixflow", {"sent": 100, "delivered": 30, "expired": 70, "lat3": 30})
    add(redis_client, "messageflow", {"sent": 100, "delivered": 97, "expired": 3, "lat4": 97})
    add(redis_client, "zixflow", {"sent": 50, "delivered": 50, "lat3": 50}, country="GB")
    assert set(first_choices(rt, 20)) == {"messageflow"}
    assert set(first_choices(rt, 20, "GB")) == {"zixflow"}
    changes = Metrics(redis_client).read()
    assert changes[field("routing_preferred_changes", channel="sms", country="IN")] == 1
    assert field("routing_preferred_changes", channel="sms", country="GB") not in changes
    # the table says so
    rows = {(r["provider"], r["country"]): r for r in rt.table()}
    assert rows[("messageflow", "IN")]["preferred"] and rows[("messageflow", "IN")]["rank"] == 1
    assert rows[("zixflow", "IN")]["delivered_share"] == 0.3


def test_the_latest_buckets_weigh_most_so_a_degradation_shows_at_once(
    redis_client: redis.Redis,
) -> None:
    rt = router(redis_client, exploration_share=0)
    for age in range(5, 11):  # an hour of good service, a few minutes ago
        add(redis_client, "zixflow", {"sent": 100, "delivered": 100, "lat3": 100}, age=age)
    add(redis_client, "zixflow", {"sent": 100, "delivered": 30, "expired": 70, "lat3": 30})
    assert set(first_choices(rt, 20)) == {"messageflow"}
    # as counted, the window still says 90 % delivered
    (row,) = [r for r in rt.table() if r["provider"] == "zixflow"]
    assert row["counts"]["delivered"] == 630 and row["delivered_share"] < 0.7


def test_the_preferred_provider_changes_only_on_a_clear_margin(redis_client: redis.Redis) -> None:
    """Two providers equally good, outcomes drawn at random: the preferred one holds."""
    rt = router(redis_client, exploration_share=0)
    rng = random.Random(7)
    preferred = []
    for _ in range(300):
        for provider in ("zixflow", "messageflow"):
            delivered = rng.random() < 0.95
            outcome = {"delivered": 1, f"lat{rng.randint(3, 5)}": 1} if delivered else {}
            add(redis_client, provider, {"sent": 1, **outcome, "expired": int(not delivered)})
        preferred.append(rt.route("sms", "IN").providers[0])
    changes = sum(1 for a, b in itertools.pairwise(preferred) if a != b)
    assert changes <= 2, preferred


def test_exploration_takes_its_share_and_no_more(redis_client: redis.Redis) -> None:
    add(redis_client, "zixflow", {"sent": 100, "delivered": 95, "expired": 5, "lat3": 95})
    rt = router(redis_client, exploration_share=0.05)
    routes = [rt.route("sms", "IN") for _ in range(4000)]
    explored = [r for r in routes if r.reasons[0]["explored"]]
    assert 0.04 <= len(explored) / len(routes) <= 0.06  # seeded: the same draws every run
    assert {r.providers[0] for r in explored} == {"messageflow"}
    assert all(r.providers[0] == "zixflow" for r in routes if not r.reasons[0]["explored"])
    never = router(redis_client, exploration_share=0)
    assert set(first_choices(never, 500)) == {"zixflow"}


def open_breaker(redis_client: redis.Redis, provider: str, since: float, opened: int = 1) -> None:
    prefix = f"{provider}|sms|"
    redis_client.hset(
        keys.routing_breakers(),
        mapping={f"{prefix}state": "open", f"{prefix}since": since, f"{prefix}opened": opened},
    )


def test_an_open_provider_is_skipped_and_with_every_one_open_the_least_bad_is_tried(
    redis_client: redis.Redis,
) -> None:
    now = float(redis_client.time()[0])
    open_breaker(redis_client, "zixflow", now)
    rt = router(redis_client, exploration_share=0.5)
    routes = [rt.route("sms", "IN") for _ in range(200)]
    # skipped, but still there for failover; exploration never picks it
    assert {r.providers for r in routes} == {("messageflow", "zixflow")}
    assert routes[0].reasons[1]["breaker"] == "open"
    open_breaker(redis_client, "messageflow", now)
    add(redis_client, "messageflow", {"sent": 100, "delivered": 20, "expired": 80})
    # every one open: the least bad first, never no provider at all
    assert rt.route("sms", "IN").providers == ("zixflow", "messageflow")


def test_a_half_open_provider_takes_its_probes(redis_client: redis.Redis) -> None:
    cooled = float(redis_client.time()[0]) - 60  # opened a minute ago, cooldown 30 s
    open_breaker(redis_client, "zixflow", cooled)
    rt = router(redis_client, exploration_share=0, probe_share=0.1)
    routes = [rt.route("sms", "IN") for _ in range(2000)]
    probes = [r for r in routes if r.providers[0] == "zixflow"]
    assert 0.08 <= len(probes) / len(routes) <= 0.12
    assert all(r.reasons[0]["probe"] and r.reasons[0]["breaker"] == "half_open" for r in probes)


def test_static_mode_keeps_the_configured_order_whatever_the_statistics(
    redis_client: redis.Redis,
) -> None:
    add(redis_client, "zixflow", {"sent": 100, "delivered": 0, "expired": 100})
    open_breaker(redis_client, "zixflow", float(redis_client.time()[0]))
    rt = router(redis_client, mode="static", exploration_share=0.5)
    routes = [rt.route("sms", "IN") for _ in range(200)]
    assert {r.providers for r in routes} == {("zixflow", "messageflow")}
    assert routes[0].reasons == ({"mode": "static", "rank": 1}, {"mode": "static", "rank": 2})
    assert redis_client.hlen(keys.routing_leaders()) == 0  # static decides nothing


def two_channel_request(channel_order: str) -> FlowRequest:
    sms = {"recipient": "919876543210", "message": "Code 4821", "sender_id": "ACME", "route": "otp"}
    whatsapp = {"recipient": "919876543210", "phone_id": "p1", "text": "Code 4821"}
    return FlowRequest.parse(
        {
            "channelOrder": channel_order,
            "messages": [
                {"channel": "sms", "timeout": 30, "data": sms},
                {"channel": "whatsapp", "timeout": 30, "messageType": "custom", "data": whatsapp},
            ],
        }
    )


def test_channel_order_auto_puts_the_better_channel_first_for_the_country(
    redis_client: redis.Redis,
) -> None:
    rt = router(redis_client)
    request = two_channel_request("auto")
    assert rt.reorder(request) == (request, None)  # no data: the caller's order
    for provider in ("zixflow", "messageflow"):
        add(redis_client, provider, {"sent": 100, "delivered": 40, "expired": 60, "lat5": 40})
    add(
        redis_client,
        "zixflow",
        {"sent": 100, "delivered": 98, "expired": 2, "lat2": 98},
        channel="whatsapp",
    )
    reordered, note = rt.reorder(request)
    assert [step.channel for step in reordered.steps] == ["whatsapp", "sms"]
    assert note is not None and note["caller_order"] == ["sms", "whatsapp"]
    assert note["merits"][1] > note["merits"][0]
    # elsewhere, and in static mode, nothing moves
    assert router(redis_client, mode="static").reorder(request) == (request, None)
    assert reordered.channel_order == "auto"
    assert FlowRequest.parse(reordered.to_json_dict()) == reordered


def test_channel_order_takes_caller_or_auto_only() -> None:
    with pytest.raises(ValueError, match="channelOrder"):
        two_channel_request("fastest")
    assert two_channel_request("caller").channel_order == "caller"
