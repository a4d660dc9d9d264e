"""The support dashboard, in process (Starlette's test client is the real app) on a real
Redis: sign-in and its cookie, CSRF, sessions that end, the read-only role, one workspace's
flows only, finding a flow by the number a person gives, and nothing of a message's text."""

from __future__ import annotations

import re
import uuid
from typing import Any

import pytest
import redis
from fastapi.testclient import TestClient

from otpflow.api.app import create_app
from otpflow.api.dashboard_auth import SESSION_COOKIE, _token_hash, hash_password
from otpflow.config.settings import Settings
from otpflow.flow import keys
from otpflow.flow.states import DlrStatus
from otpflow.producers import OtpflowClient

from harness import sms_step, whatsapp_step

PASSWORD = "support-password-1"
SUPPORT = f"acme:ana:support:{hash_password(PASSWORD)}"
TEXT = "Your acme code is 918273"


@pytest.fixture
def otp(redis_client: redis.Redis) -> OtpflowClient:
    settings = Settings(
        broker_url="memory://",
        api_keys="acme:acme-key,other:other-key",
        dashboard={"users": SUPPORT, "session_seconds": 600},  # type: ignore[arg-type]
        routes={"sms": "zixflow", "whatsapp": "zixflow"},  # type: ignore[arg-type]
        fraud={"mode": "off"},  # type: ignore[arg-type]
    )
    return OtpflowClient(settings, redis_client=redis_client)


def browser(otp: OtpflowClient, https: bool = False) -> TestClient:
    base = "https://testserver" if https else "http://testserver"
    return TestClient(create_app(otp.settings, otp), base_url=base, follow_redirects=False)


def csrf(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found is not None, html
    return found.group(1)


def sign_in(
    client: TestClient, workspace: str = "acme", user: str = "ana", password: str = PASSWORD
) -> Any:
    form = client.get("/dashboard/signin")
    assert form.status_code == 200
    body = {"csrf": csrf(form.text), "workspace": workspace, "user": user, "password": password}
    return client.post("/dashboard/signin", data=body)


def switched_flow(otp: OtpflowClient, to: str = "919876543210") -> str:
    """A flow whose SMS failed and whose WhatsApp delivered, as the worker would record it."""
    flow_id = otp.send(
        {"messages": [sms_step(to, text=TEXT), whatsapp_step(to, text=TEXT)]}, workspace="acme"
    )
    store = otp.store
    store.claim(flow_id, 0, 1, 30)
    store.accepted(flow_id, 0, "zixflow", "m0", 30)
    store.record_dlr(flow_id, 0, DlrStatus.FAILED, "zixflow", "m0", provider_status="undeliv")
    store.claim(flow_id, 1, 1, 30)
    store.accepted(flow_id, 1, "zixflow", "m1", 30)
    store.record_dlr(flow_id, 1, DlrStatus.DELIVERED, "zixflow", "m1")
    return flow_id


def test_every_page_asks_for_a_sign_in_first(otp: OtpflowClient) -> None:
    client = browser(otp)
    flow = f"/dashboard/flows/{uuid.uuid4()}"
    for method, path in [
        ("GET", "/dashboard"),
        ("GET", "/dashboard/search?q=1"),
        ("GET", "/dashboard/analytics"),
        ("GET", flow),
        ("POST", f"{flow}/cancel"),
        ("POST", "/dashboard/signout"),
    ]:
        reply = client.request(method, path)
        assert reply.status_code == 303 and reply.headers["location"] == "/dashboard/signin"
    assert client.get(f"{flow}/story").status_code == 401  # htmx's poll: no redirect


def test_a_wrong_password_or_a_forged_form_signs_nobody_in(otp: OtpflowClient) -> None:
    client = browser(otp)
    wrong = sign_in(client, password="not-it")
    assert wrong.status_code == 401 and "Wrong workspace, user or password." in wrong.text
    assert SESSION_COOKIE not in wrong.cookies
    assert sign_in(client, workspace="other").status_code == 401  # ana is acme's
    forged = client.post(
        "/dashboard/signin",
        data={"csrf": "made-up", "workspace": "acme", "user": "ana", "password": PASSWORD},
    )
    assert forged.status_code == 403


def test_ten_wrong_passwords_lock_the_user_for_a_while(
    otp: OtpflowClient, redis_client: redis.Redis
) -> None:
    client = browser(otp)
    for _ in range(10):
        assert sign_in(client, password="guess").status_code == 401
    locked = sign_in(client)  # the right password, too late
    assert locked.status_code == 429 and "Too many wrong sign-ins" in locked.text
    assert SESSION_COOKIE not in locked.cookies
    for key in redis_client.scan_iter(match="otpflow:dash:acme:signin:*"):
        assert 0 < redis_client.ttl(key) <= 15 * 60
        redis_client.delete(key)  # the window passed
    assert sign_in(client).status_code == 303


def test_the_session_cookie_is_httponly_strict_and_secure_over_https(
    otp: OtpflowClient, redis_client: redis.Redis
) -> None:
    for https in (False, True):
        reply = sign_in(browser(otp, https=https))
        assert reply.status_code == 303 and reply.headers["location"] == "/dashboard"
        cookie = reply.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie
        assert ("Secure" in cookie) is https
    token = reply.cookies[SESSION_COOKIE]
    assert 0 < redis_client.ttl(keys.dashboard_session(_token_hash(token))) <= 600


def test_support_finds_a_flow_by_the_number_a_person_gives_and_sees_its_story(
    otp: OtpflowClient,
) -> None:
    flow_id = switched_flow(otp)
    client = browser(otp)
    assert sign_in(client).status_code == 303
    for said in ("+91 98765 43210", "919876543210", "+91-98765-43210"):
        found = client.get("/dashboard/search", params={"q": said})
        assert found.status_code == 303, said
        assert found.headers["location"] == f"/dashboard/flows/{flow_id}"
    page = client.get(f"/dashboard/flows/{flow_id}")
    assert page.status_code == 200
    html = page.text
    assert "+91 •••••• 3210" in html and "9876543210" not in html
    assert "whatsapp" in html and "switch" in html and "undeliv" in html
    assert "flow delivered by step 1" in html
    assert TEXT not in html and "918273" not in html
    assert "Cancel this flow" not in html  # support reads only
    assert "Latest flows" in client.get("/dashboard").text


def test_the_list_masks_and_another_workspace_sees_nothing(otp: OtpflowClient) -> None:
    flow_id = switched_flow(otp)
    mine = browser(otp)
    sign_in(mine)
    assert "+91 •••••• 3210" in mine.get("/dashboard").text
    other = browser(otp)
    assert sign_in(other, workspace="other", user="", password="other-key").status_code == 303
    assert other.get(f"/dashboard/flows/{flow_id}").status_code == 404
    assert other.get(f"/dashboard/flows/{flow_id}/story").status_code == 404
    assert other.get("/dashboard/search", params={"q": flow_id}).status_code == 404
    listed = other.get("/dashboard/search", params={"q": "919876543210"})
    assert listed.status_code == 200 and flow_id not in listed.text
    assert flow_id not in other.get("/dashboard").text


def test_forms_need_their_csrf_token_and_support_cannot_cancel(otp: OtpflowClient) -> None:
    flow_id = otp.send({"messages": [sms_step("919876543211")]}, workspace="acme")
    support = browser(otp)
    sign_in(support)
    token = csrf(support.get("/dashboard").text)
    path = f"/dashboard/flows/{flow_id}/cancel"
    assert support.post(path, data={"csrf": "wrong"}).status_code == 403
    assert support.post(path, data={"csrf": token}).status_code == 403  # read-only
    admin = browser(otp)
    sign_in(admin, user="", password="acme-key")
    page = admin.get(f"/dashboard/flows/{flow_id}").text
    assert "Cancel this flow" in page
    assert admin.post(path, data={}).status_code == 403
    assert admin.post(path, data={"csrf": csrf(page)}).status_code == 303
    view = otp.status(flow_id)
    assert view is not None and view.status == "cancelled"


def test_sign_out_ends_the_session(otp: OtpflowClient, redis_client: redis.Redis) -> None:
    client = browser(otp)
    token = sign_in(client).cookies[SESSION_COOKIE]
    page = client.get("/dashboard")
    assert page.status_code == 200
    assert client.post("/dashboard/signout", data={"csrf": "wrong"}).status_code == 403
    assert client.post("/dashboard/signout", data={"csrf": csrf(page.text)}).status_code == 303
    assert redis_client.exists(keys.dashboard_session(_token_hash(token))) == 0
    client.cookies.set(SESSION_COOKIE, token, path="/dashboard")  # kept by a stolen copy
    assert client.get("/dashboard").status_code == 303


def test_an_expired_session_signs_in_again(otp: OtpflowClient, redis_client: redis.Redis) -> None:
    client = browser(otp)
    token = sign_in(client).cookies[SESSION_COOKIE]
    redis_client.delete(keys.dashboard_session(_token_hash(token)))  # its TTL ran out
    assert client.get("/dashboard").headers["location"] == "/dashboard/signin"


def test_a_search_that_is_no_recipient_says_so(otp: OtpflowClient) -> None:
    client = browser(otp)
    sign_in(client)
    reply = client.get("/dashboard/search", params={"q": "hello"})
    assert reply.status_code == 400 and "neither a phone number" in reply.text


def test_delivery_at_a_glance_counts_by_channel_provider_and_country(
    otp: OtpflowClient,
) -> None:
    switched_flow(otp)
    client = browser(otp)
    sign_in(client)
    page = client.get("/dashboard/analytics", params={"period": "hour"})
    assert page.status_code == 200
    html = " ".join(page.text.split())
    assert "1 of 2 messages delivered (50%), 1 channel switches" in html
    for label in ("By channel", "By provider", "By country", "whatsapp", "zixflow", "IN"):
        assert label in html
    assert 'id="chart-data"' in html and "chart.umd.min.js" in html
    # time to deliver by provider and by country too, once there are enough deliveries
    for n in range(5):
        switched_flow(otp, f"91987654322{n}")
    html = " ".join(client.get("/dashboard/analytics", params={"period": "day"}).text.split())
    for label in ("whatsapp", "zixflow", "IN"):
        cells = "</td><td>".join([label, r"\d+", r"\d+", r"[^<]+", r"\d+", r"[\d.]+s", r"[\d.]+s"])
        assert re.search(f"<td>{cells}</td>", html), label
    assert client.get("/dashboard/analytics", params={"period": "year"}).status_code == 400
    assert client.get("/dashboard/static/htmx.min.js").status_code == 200


def test_a_running_flows_story_refreshes_itself_until_it_ends(otp: OtpflowClient) -> None:
    flow_id = otp.send({"messages": [sms_step("919876543212")]}, workspace="acme")
    otp.store.claim(flow_id, 0, 1, 30)
    otp.store.accepted(flow_id, 0, "zixflow", "m0", 30)
    client = browser(otp)
    sign_in(client)
    running = client.get(f"/dashboard/flows/{flow_id}/story")
    assert running.status_code == 200
    assert f'hx-get="/dashboard/flows/{flow_id}/story"' in running.text
    assert 'hx-trigger="every 2s"' in running.text and "updates by itself" in running.text
    otp.store.record_dlr(flow_id, 0, DlrStatus.DELIVERED, "zixflow", "m0")
    ended = client.get(f"/dashboard/flows/{flow_id}/story")
    assert "hx-get" not in ended.text and "flow delivered by step 0" in ended.text
    assert browser(otp).get(f"/dashboard/flows/{flow_id}/story").status_code == 401
