"""The fraud guard through the real app and a real Redis (the broker is kombu's memory one:
what is published is counted, nothing is sent). Each rule, each mode, the safe list and
``trusted``, blocks that expire and are lifted, conversion, and parallel requests."""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import phonenumbers
import pytest
import redis
from fastapi.testclient import TestClient

from otpflow.api.app import create_app
from otpflow.config.settings import Settings
from otpflow.producers import FraudRefused, OtpflowClient

from harness import metric_samples, mobile_numbers, wait_for

HEADERS = {"x-api-key": "demo-key", "x-workspace-id": "demo"}


def flow(to: str, *, otp: bool = False, **extra: Any) -> dict[str, Any]:
    text = "Your code is {{code}}" if otp else "Your code is 4821"
    body: dict[str, Any] = {
        "messages": [
            {
                "channel": "sms",
                "timeout": 30,
                "messageType": "",
                "data": {"recipient": to, "message": text, "sender_id": "A", "route": "otp"},
            }
        ],
        **extra,
    }
    if otp:
        body["otp"] = {"ttl": 30}
    return body


class Guarded:
    """The app with a fraud setting, and what it published."""

    def __init__(self, redis_client: redis.Redis, **fraud: Any) -> None:
        settings = Settings(
            broker_url="memory://", api_keys="demo:demo-key,other:other-key", fraud=fraud
        )
        self.otp = OtpflowClient(settings, redis_client=redis_client)
        self.published: list[str] = []
        first_send = self.otp.tasks.first_send

        def counted(flow_id: str) -> None:
            self.published.append(flow_id)
            first_send(flow_id)

        self.otp.tasks.first_send = counted  # type: ignore[method-assign]
        self.http = TestClient(create_app(settings, self.otp), raise_server_exceptions=False)

    def post(self, body: dict[str, Any]) -> Any:
        return self.http.post("/v1/otpflow", headers=HEADERS, json=body)

    def reason(self, to: str, **extra: Any) -> str | None:
        """None if the flow was accepted, else the 403's reason."""
        reply = self.post(flow(to, **extra))
        if reply.status_code == 200:
            return None
        assert reply.status_code == 403, reply.text
        body = reply.json()
        assert body["success"] is False and body["message"].startswith("refused by the fraud")
        return str(body["reason"])

    def blocks(self) -> list[dict[str, Any]]:
        reply = self.http.get("/v1/fraud/blocks", headers=HEADERS)
        assert reply.status_code == 200
        return list(reply.json()["blocks"])

    def flow_keys(self) -> list[bytes]:
        """The flows stored (each a hash; its request and timeline are keys of their own)."""
        found = self.otp.store.redis.scan_iter("otpflow:flow:*")
        return [key for key in found if key.count(b":") == 2]


@pytest.fixture
def guarded(redis_client: redis.Redis) -> Any:
    return lambda **fraud: Guarded(redis_client, **fraud)


def e164(digits: str) -> str:
    return "+" + digits


def test_denied_and_not_allowed_countries_are_refused_and_nothing_is_stored(
    guarded: Any,
) -> None:
    app = guarded(denied_countries="NG")
    (nigerian,) = mobile_numbers("NG", 1)
    (british,) = mobile_numbers("GB", 1)
    assert app.reason(nigerian) == "country_not_allowed"
    assert app.reason(british) is None
    assert len(app.flow_keys()) == 1 and len(app.published) == 1

    only_india = guarded(allowed_countries="IN")
    assert only_india.reason(british) == "country_not_allowed"
    assert only_india.reason(mobile_numbers("IN", 1)[0]) is None


def test_premium_rate_numbers_get_no_paid_message(guarded: Any) -> None:
    app = guarded()
    premium = phonenumbers.example_number_for_type("GB", phonenumbers.PhoneNumberType.PREMIUM_RATE)
    digits = f"{premium.country_code}{premium.national_number}"
    assert app.reason(digits) == "number_type"
    assert app.flow_keys() == [] and app.published == []
    # what the operator refuses is a setting: the same number passes once it allows the type
    assert guarded(refused_number_types="uan").reason(digits) is None


def test_a_country_over_its_hourly_cap_is_refused_others_are_not(guarded: Any) -> None:
    app = guarded(country_hourly_limits="GB:3", prefix_limit=100)
    british = mobile_numbers("GB", 4)
    assert [app.reason(to) for to in british] == [None, None, None, "country_limit"]
    assert app.reason(mobile_numbers("IN", 1)[0]) is None
    assert app.blocks() == []  # a cap refuses, it does not block


def test_prefix_velocity_blocks_the_prefix_and_an_operator_lifts_it(guarded: Any) -> None:
    app = guarded(prefix_limit=3)
    numbers = mobile_numbers("GB", 6)
    assert [app.reason(to) for to in numbers[:5]] == [
        None,
        None,
        None,
        "prefix_velocity",
        "blocked",
    ]
    assert app.reason(mobile_numbers("GB", 1, first=1000)[0]) is None  # the next prefix
    (block,) = app.blocks()
    assert block["scope"] == "prefix" and block["reason"] == "prefix_velocity"
    assert block["value"] == e164(numbers[0])[:-3] and block["country"] == "GB"
    assert block["refused"] == 1 and block["mode"] == "enforce"
    assert (block["flows"], block["verified"], block["window_seconds"]) == (4, None, 3600)
    assert block["id"].startswith("prefix-") and numbers[0][:-3] not in block["id"]

    lifted = app.http.delete(f"/v1/fraud/blocks/{block['id']}", headers=HEADERS)
    assert lifted.status_code == 200 and app.blocks() == []
    assert app.reason(numbers[5]) is None  # it starts afresh
    assert app.http.delete(f"/v1/fraud/blocks/{block['id']}", headers=HEADERS).status_code == 404
    bad = app.http.delete("/v1/fraud/blocks/prefix-../x", headers=HEADERS)
    assert bad.status_code in (400, 404)
    bad = app.http.delete("/v1/fraud/blocks/GB", headers=HEADERS)
    assert bad.status_code == 400 and bad.json()["errors"][0]["field"] == "block_id"


def test_a_block_ends_by_itself(guarded: Any) -> None:
    app = guarded(prefix_limit=1, block_seconds=1, prefix_window_seconds=1)
    first, second, third = mobile_numbers("GB", 3)
    assert app.reason(first) is None
    assert app.reason(second) == "prefix_velocity"
    wait_for(lambda: app.blocks() == [], 10)
    assert app.reason(third) is None


def test_the_safe_list_passes_every_rule_and_trusted_the_counted_ones(guarded: Any) -> None:
    safe, *others = mobile_numbers("NG", 4)
    app = guarded(
        prefix_limit=1,
        denied_countries="NG",
        safe_list=f"+{safe},+{mobile_numbers('GB', 1)[0][:-3]}*",
    )
    assert app.reason(safe) is None
    assert app.reason(safe, allowConcurrent=True) is None
    for to in mobile_numbers("GB", 3):  # under the safe prefix: no velocity counts
        assert app.reason(to) is None
    # trusted: the caller knows the person; its velocity goes uncounted, but the operator's
    # geo permissions stand
    assert app.reason(others[0], trusted=True) == "country_not_allowed"
    indian = mobile_numbers("IN", 3)
    assert [app.reason(to, trusted=True) for to in indian] == [None, None, None]
    # nothing was counted: the limit of 1 is still free
    assert app.reason(indian[0], allowConcurrent=True) is None
    assert app.reason(indian[1], allowConcurrent=True) == "prefix_velocity"
    reply = app.post(flow(indian[2], trusted="yes"))
    assert reply.status_code == 400 and reply.json()["errors"][0]["field"] == "trusted"


def test_shadow_mode_answers_yes_sends_nothing_and_shows_the_reason(guarded: Any) -> None:
    app = guarded(mode="shadow", prefix_limit=1)
    first, second = mobile_numbers("GB", 2)
    assert app.reason(first) is None
    reply = app.post(flow(second, otp=True))
    assert reply.status_code == 200 and reply.json()["message"] == "flow accepted"
    request_id = reply.json()["request_id"]
    assert len(app.published) == 1  # only the first flow's send
    shown = app.http.get(f"/v1/otpflow/{request_id}", headers=HEADERS).json()
    assert shown["status"] == "blocked" and shown["reason"] == "prefix_velocity"
    assert [step["status"] for step in shown["steps"]] == ["skipped"]
    assert [event["type"] for event in shown["events"]] == ["flow_created", "fraud_blocked"]
    # no timer can send it, and its code is gone: a verify finds nothing to check
    assert app.otp.store.redis.zscore("otpflow:timers", f"{request_id}:0") is None
    verify = app.http.post(
        f"/v1/otpflow/{request_id}/verify", headers=HEADERS, json={"code": "123456"}
    )
    assert verify.status_code == 410
    samples = metric_samples(app.http.get("/metrics").text)
    labels = {"reason": "prefix_velocity", "country": "GB", "mode": "shadow"}
    assert samples[("otpflow_fraud_blocked_total", tuple(sorted(labels.items())))] == 1


def test_monitor_mode_sends_and_records_what_it_would_have_refused(guarded: Any) -> None:
    app = guarded(mode="monitor", prefix_limit=1)
    first, second = mobile_numbers("GB", 2)
    assert app.reason(first) is None
    reply = app.post(flow(second))
    assert reply.status_code == 200 and len(app.published) == 2
    shown = app.http.get(f"/v1/otpflow/{reply.json()['request_id']}", headers=HEADERS).json()
    assert shown["status"] == "queued"
    monitored = [e for e in shown["events"] if e["type"] == "fraud_monitored"]
    assert [(e["reason"], e["country"]) for e in monitored] == [("prefix_velocity", "GB")]
    (block,) = app.blocks()
    assert block["mode"] == "monitor"


def test_off_checks_nothing_and_workspaces_override_the_mode(guarded: Any) -> None:
    app = guarded(mode="off", prefix_limit=1, denied_countries="GB")
    assert [app.reason(to) for to in mobile_numbers("GB", 3)] == [None, None, None]
    per_workspace = guarded(prefix_limit=1, workspaces={"demo": {"mode": "off"}})
    others = mobile_numbers("GB", 3, first=2000)
    assert [per_workspace.reason(to) for to in others] == [None, None, None]


def test_parallel_requests_to_one_prefix_never_pass_more_than_the_limit(
    redis_client: redis.Redis,
) -> None:
    settings = Settings(broker_url="memory://", fraud={"prefix_limit": 5})
    numbers = mobile_numbers("GB", 40)

    def send(to: str) -> str:
        client = OtpflowClient(settings, redis_client=redis_client)
        try:
            client.send(flow(to), workspace="demo")
            return "accepted"
        except FraudRefused as exc:
            return exc.reason

    with ThreadPoolExecutor(max_workers=16) as pool:
        outcomes = list(pool.map(send, numbers))
    assert outcomes.count("accepted") == 5
    assert outcomes.count("prefix_velocity") == 1
    assert outcomes.count("blocked") == 34


def test_conversion_judges_the_codes_that_had_their_chance(guarded: Any) -> None:
    """One wait for the codes' 30 s, several countries, each a case of the rule:

    - GB: three codes never entered: the prefix, then the country, is blocked; once the
      blocks end, both start afresh (the counts that blocked them went with them);
    - IN: of two codes, one verified through OTPflow and one reported by feedback: both count
      (at 75 %, one alone would block);
    - DE: two flows cancelled before anything was delivered: no chance, no count;
    - US: two safe-listed numbers never verify: that says nothing of their prefix;
    - FR: two flows without a code, under ``feedback``: unreported, they count as unverified.
    """
    safe = mobile_numbers("US", 3)
    app = guarded(
        min_volume=2,
        min_conversion=0.75,
        feedback=True,
        feedback_window_seconds=30,
        block_seconds=5,
        safe_list=f"+{safe[0]},+{safe[1]}",
    )
    british = mobile_numbers("GB", 4)
    for to in british[:3]:
        assert app.reason(to, otp=True) is None
    indian = mobile_numbers("IN", 3)
    ids = [app.post(flow(to, otp=True)).json()["request_id"] for to in indian[:2]]
    code = app.otp.store.keyring.code(ids[0], 6)
    verify = app.http.post(f"/v1/otpflow/{ids[0]}/verify", headers=HEADERS, json={"code": code})
    assert verify.status_code == 200
    feedback = app.http.post(
        f"/v1/otpflow/{ids[1]}/feedback", headers=HEADERS, json={"event": "verified"}
    )
    assert feedback.json() == {"success": True, "message": "feedback recorded"}
    again = app.http.post(
        f"/v1/otpflow/{ids[1]}/feedback", headers=HEADERS, json={"event": "verified"}
    )
    assert again.json()["message"] == "already recorded"
    german = mobile_numbers("DE", 3)
    for to in german[:2]:
        request_id = app.post(flow(to, otp=True)).json()["request_id"]
        cancel = app.http.post(f"/v1/otpflow/{request_id}/cancel", headers=HEADERS)
        assert cancel.status_code == 200
    for to in safe[:2]:
        assert app.reason(to, otp=True) is None
    french = mobile_numbers("FR", 3)
    for to in french[:2]:
        assert app.reason(to) is None  # no code: feedback's window is its chance

    time.sleep(31)  # the codes' TTL: not a timing assertion, the rule's own clock

    assert app.reason(british[3], otp=True) == "low_conversion"
    assert app.reason(mobile_numbers("GB", 1, first=1000)[0], otp=True) == "low_conversion"
    blocks = {block["scope"]: block for block in app.blocks()}
    assert blocks.keys() == {"prefix", "country"}
    assert blocks["prefix"]["detail"].startswith("0 of 3")
    assert (blocks["prefix"]["flows"], blocks["prefix"]["verified"]) == (3, 0)
    assert blocks["country"]["value"] == "GB" and blocks["country"]["reason"] == "low_conversion"
    assert app.reason(indian[2], otp=True) is None
    assert app.reason(german[2], otp=True) is None
    assert app.reason(safe[2], otp=True) is None
    assert app.reason(french[2]) == "low_conversion"
    wait_for(lambda: [b for b in app.blocks() if b["country"] == "GB"] == [], 15)
    assert app.reason(mobile_numbers("GB", 1, first=20)[0], otp=True) is None


def test_a_block_made_in_monitor_mode_refuses_nothing_once_enforced(guarded: Any) -> None:
    numbers = mobile_numbers("GB", 5)
    watching = guarded(mode="monitor", prefix_limit=1)
    assert [watching.reason(to) for to in numbers[:2]] == [None, None]
    (block,) = watching.blocks()
    assert block["mode"] == "monitor"
    # the same workspace, now enforcing: the rules are checked afresh (the block took the
    # counts that made it; two flows have counted since)
    assert guarded(prefix_limit=10).reason(numbers[2]) is None
    tight = guarded(prefix_limit=2)
    assert tight.reason(numbers[3]) == "prefix_velocity"
    (block,) = tight.blocks()
    assert block["mode"] == "enforce"
    assert tight.reason(numbers[4]) == "blocked"


def test_blocks_belong_to_their_workspace(guarded: Any) -> None:
    app = guarded(prefix_limit=1)
    numbers = mobile_numbers("GB", 3)
    assert [app.reason(to) for to in numbers[:2]] == [None, "prefix_velocity"]
    (block,) = app.blocks()
    other = {"x-api-key": "other-key", "x-workspace-id": "other"}
    assert app.http.get("/v1/fraud/blocks", headers=other).json()["blocks"] == []
    assert app.http.delete(f"/v1/fraud/blocks/{block['id']}", headers=other).status_code == 404
    assert app.http.post("/v1/otpflow", headers=other, json=flow(numbers[2])).status_code == 200
    assert [b["id"] for b in app.blocks()] == [block["id"]]


def test_numbers_of_no_country_are_refused_unless_allowed(guarded: Any) -> None:
    inmarsat = phonenumbers.example_number_for_non_geo_entity(870)
    digits = f"{inmarsat.country_code}{inmarsat.national_number}"
    assert guarded().reason(digits) == "country_not_allowed"
    assert guarded(allow_non_geographic=True).reason(digits) is None


def test_a_number_written_two_ways_is_screened_once(guarded: Any) -> None:
    """``4407…`` and ``447…`` are one British number: one flow to it counts once to the
    country's hour."""
    app = guarded(country_hourly_limits="GB:2", prefix_limit=100)
    first, second = mobile_numbers("GB", 2)
    one_number = flow(first)
    one_number["messages"].append(dict(one_number["messages"][0]))
    one_number["messages"][1]["data"] = {
        **one_number["messages"][0]["data"],
        "recipient": "440" + first[2:],
    }
    reply = app.post(one_number)
    assert reply.status_code == 200, reply.text
    assert app.reason(second) is None


def test_feedback_is_checked_and_only_for_the_workspaces_own_flows(guarded: Any) -> None:
    app = guarded()
    (to,) = mobile_numbers("GB", 1)
    request_id = app.post(flow(to)).json()["request_id"]
    bad = app.http.post(
        f"/v1/otpflow/{request_id}/feedback", headers=HEADERS, json={"event": "delivered"}
    )
    assert bad.status_code == 400 and bad.json()["errors"][0]["field"] == "event"
    other = {"x-api-key": "other-key", "x-workspace-id": "other"}
    stranger = app.http.post(
        f"/v1/otpflow/{request_id}/feedback", headers=other, json={"event": "verified"}
    )
    assert stranger.status_code == 404
    assert app.otp.store.redis.hget(f"otpflow:flow:{request_id}", "converted") is None


def test_a_refusal_names_no_number_in_the_logs(
    guarded: Any, caplog: pytest.LogCaptureFixture
) -> None:
    app = guarded(denied_countries="GB")
    (to,) = mobile_numbers("GB", 1)
    with caplog.at_level(logging.DEBUG):
        assert app.reason(to) == "country_not_allowed"
    text = caplog.text + "".join(str(r.__dict__) for r in caplog.records)
    assert "fraud" in text
    for form in (to, to[-7:], to[2:]):
        assert form not in text
