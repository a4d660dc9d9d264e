"""The fraud guard on the real system: a pumping run through the API, the workers and the
simulator, with the provider's requests counted (the guard at its defaults: enforce, ten flows
per prefix an hour)."""

from __future__ import annotations

import random

from harness import HEADERS, System, mobile_numbers, random_mobile, sms_step


def test_a_pumping_run_reaches_the_provider_ten_times_then_is_blocked(system: System) -> None:
    attack = mobile_numbers("GB", 30, first=7000)  # numbers in a row, one prefix
    rng = random.Random(15)
    people = [random_mobile(country, rng) for country in ("IN", "DE", "BR") for _ in range(5)]
    answers = [system.post_flow({"messages": [sms_step(to)]}) for to in attack]
    reasons = [a.json().get("reason") if a.status_code == 403 else a.status_code for a in answers]
    assert reasons == [200] * 10 + ["prefix_velocity"] + ["blocked"] * 19
    for to in people:  # other prefixes and countries go on
        assert system.post_flow({"messages": [sms_step(to)]}).status_code == 200

    attacked = set(attack)
    system.wait(
        lambda: (
            len({r["recipient"] for r in system.sim_requests(channel="sms")} & set(people))
            == len(people)
        ),
        what="every person's SMS at the provider",
    )
    at_provider = [r for r in system.sim_requests(channel="sms") if r["recipient"] in attacked]
    assert sorted(r["recipient"] for r in at_provider) == sorted(attack[:10])

    blocks = system.http.get(f"{system.stack.api_url}/v1/fraud/blocks", headers=HEADERS).json()
    (block,) = [b for b in blocks["blocks"] if b["country"] == "GB"]
    assert block["value"] == "+" + attack[0][:-3] and block["refused"] == 19
    lifted = system.http.delete(
        f"{system.stack.api_url}/v1/fraud/blocks/{block['id']}", headers=HEADERS
    )
    assert lifted.status_code == 200
