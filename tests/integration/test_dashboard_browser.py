"""The support dashboard in a real browser: Debian's chromium and chromedriver driven by
Selenium (nothing downloads a browser), against the real API under uvicorn, workers and the
simulator. A support agent signs in, finds a flow that switched from SMS to WhatsApp by the
number the person gives, sees both steps and the switch; another workspace cannot see it; no
page holds the message's text or code; the pages fit a phone's width and work by keyboard.

Screenshots go to ``OTPFLOW_SCREENSHOTS`` (a folder) if set, else the test's own temp folder.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver

from otpflow.api.dashboard_auth import hash_password

from harness import (
    API_KEY,
    REDIS_HOST,
    WORKSPACE,
    System,
    in_ci,
    mobile_numbers,
    sms_step,
    start_system,
    stop_system,
    whatsapp_step,
)

pytestmark = pytest.mark.integration

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
PASSWORD = "support-password-1"
TEXT = "Your acme code is 552817"


def _no_browser() -> str | None:
    missing = [path for path in (CHROMIUM, CHROMEDRIVER) if not shutil.which(path)]
    if missing:
        return f"needs Debian's chromium and chromium-driver ({', '.join(missing)} missing)"
    return None


@pytest.fixture(scope="module")
def dashboard(tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    problem = _no_browser()
    if problem:
        if in_ci():
            pytest.fail(problem)
        pytest.skip(problem)
    running = start_system(
        Path(tmp_path_factory.mktemp("dashboard")),
        state_url=f"{REDIS_HOST}/7",
        broker_url=f"{REDIS_HOST}/8",
        workers=1,
        env={
            "OTPFLOW_DASHBOARD__USERS": f"{WORKSPACE}:ana:support:{hash_password(PASSWORD)}",
            "OTPFLOW_ROUTES__WHATSAPP": "zixflow",
        },
    )
    yield running
    stop_system(running)


@pytest.fixture
def browser() -> Iterator[WebDriver]:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--window-size=1280,900",
    ):
        options.add_argument(flag)
    profile = tempfile.mkdtemp(prefix="otpflow-chromium-")
    options.add_argument(f"--user-data-dir={profile}")
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.implicitly_wait(5)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def screenshots(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("OTPFLOW_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def sign_in(driver: WebDriver, system: System, workspace: str, user: str, password: str) -> None:
    driver.get(f"{system.stack.api_url}/dashboard")
    driver.find_element(By.ID, "workspace").send_keys(workspace)
    driver.find_element(By.ID, "user").send_keys(user)
    field = driver.find_element(By.ID, "password")
    field.send_keys(password)
    field.submit()
    assert "Did the code reach this person?" in driver.page_source


def switched(system: System, to: str) -> str:
    system.rules(
        {"channel": "sms", "recipient": to, "action": "fail", "delay_ms": 100},
        {"channel": "whatsapp", "recipient": to, "action": "deliver", "delay_ms": 100},
    )
    flow_id = system.start({"messages": [sms_step(to, text=TEXT), whatsapp_step(to, text=TEXT)]})
    view = system.wait_terminal(flow_id)
    assert view.status == "delivered" and view.delivered_step == 1
    return flow_id


def spoken(number: str) -> str:
    """A number as a person reads it out: +91 98765 43210."""
    return f"+{number[:2]} {number[2:7]} {number[7:]}"


def test_support_finds_a_switched_flow_by_number_and_sees_both_steps(
    dashboard: System, browser: WebDriver, tmp_path: Path
) -> None:
    driver = browser
    (to,) = mobile_numbers("IN", 1, first=310_000)
    flow_id = switched(dashboard, to)
    sign_in(driver, dashboard, WORKSPACE, "ana", PASSWORD)
    search = driver.find_element(By.ID, "q")
    search.send_keys(spoken(to), Keys.ENTER)
    assert flow_id in driver.current_url
    rows = driver.find_elements(By.CSS_SELECTOR, "table.steps tbody tr")
    cells = [[cell.text for cell in row.find_elements(By.TAG_NAME, "td")] for row in rows]
    assert [(c[1], c[3]) for c in cells] == [("sms", "failed"), ("whatsapp", "delivered")]
    timeline = driver.find_element(By.CSS_SELECTOR, "ol.timeline").text
    assert "switch sms -> whatsapp" in timeline and "flow delivered by step 1" in timeline
    assert to[-4:] in driver.page_source and to not in driver.page_source
    driver.save_screenshot(str(screenshots(tmp_path) / "dashboard-flow.png"))


def test_another_workspace_cannot_see_the_flow(dashboard: System, browser: WebDriver) -> None:
    driver = browser
    (to,) = mobile_numbers("IN", 1, first=320_000)
    flow_id = switched(dashboard, to)
    sign_in(driver, dashboard, "other-ws", "", "other-key")
    driver.get(f"{dashboard.stack.api_url}/dashboard/flows/{flow_id}")
    assert "No such flow" in driver.page_source
    driver.get(f"{dashboard.stack.api_url}/dashboard/search?q={to}")
    assert flow_id not in driver.page_source
    assert not driver.find_elements(By.CSS_SELECTOR, "table.flows tbody tr")


def test_no_page_holds_the_text_or_the_code_and_every_page_fits_a_phone(
    dashboard: System, browser: WebDriver, tmp_path: Path
) -> None:
    driver = browser
    (to,) = mobile_numbers("IN", 1, first=330_000)
    flow_id = switched(dashboard, to)
    driver.set_window_size(390, 844)
    sign_in(driver, dashboard, WORKSPACE, "", API_KEY)
    # by keyboard: the search field is reached with Tab, the search sent with Enter
    body = driver.find_element(By.TAG_NAME, "body")
    for _ in range(12):
        body = driver.switch_to.active_element
        if body.get_attribute("id") == "q":
            break
        body.send_keys(Keys.TAB)
    assert driver.switch_to.active_element.get_attribute("id") == "q"
    driver.switch_to.active_element.send_keys(to, Keys.ENTER)
    assert flow_id in driver.current_url
    base = dashboard.stack.api_url
    for path in (
        "/dashboard",
        f"/dashboard/search?q={to}",
        f"/dashboard/flows/{flow_id}",
        "/dashboard/analytics?period=hour",
        "/dashboard/analytics?period=week",
    ):
        driver.get(base + path)
        html = driver.page_source
        assert TEXT not in html and "552817" not in html, path
        width = driver.execute_script(
            "return [document.documentElement.scrollWidth, window.innerWidth]"
        )
        assert width[0] <= width[1], (path, width)
    driver.get(base + "/dashboard/analytics?period=hour")
    assert driver.execute_script("return !!window.Chart")
    driver.save_screenshot(str(screenshots(tmp_path) / "dashboard-phone.png"))
