"""The console in headless Chromium: edit a route, see its validation, test it, and call it through the gateway.

Uses Debian's chromium and chromium-driver packages (/usr/bin/chromium and
/usr/bin/chromedriver) driven by Selenium. The driver's path is given, so
Selenium Manager never looks for or downloads a driver or a browser. Outside CI
the module is skipped when Chromium, chromedriver or Selenium is missing; in CI
(CI set) it must run.
"""

import base64
import os
import shutil
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1400,1000",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
PASSWORD = "correct horse battery"
# Seconds that one page load, or one wait for an element or a URL, may take.
WAIT_SECONDS = 15


def missing_tools():
    """Return why the browser test cannot run here, or an empty string."""
    if not shutil.which(CHROMIUM):
        return f"{CHROMIUM} is missing; install it with: apt-get install -y chromium"
    if not shutil.which(CHROMEDRIVER):
        return f"{CHROMEDRIVER} is missing; install it with: apt-get install -y chromium-driver"
    try:
        import selenium.webdriver  # noqa: F401
    except ImportError:
        return "Selenium is missing; install it with: .venv/bin/pip install 'selenium>=4.20,<5'"
    return ""


pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        bool(missing_tools()) and not os.environ.get("CI"), reason=missing_tools() or "browser tools are present"
    ),
]


@pytest.fixture
def accounts(django_user_model, make_user):
    """Store a superuser for the console and a user with the role that the new route requires."""
    django_user_model.objects.create_superuser("root", "root@example.com", PASSWORD)
    make_user(username="olivia", password=PASSWORD, roles=["orders-reader"])


@pytest.fixture
def driver(gateway, accounts, tmp_path, monkeypatch):
    """Return a Selenium driver of headless Chromium with a fresh profile, started after the users are stored."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    # Selenium Manager is skipped when the driver's path is given. If it runs anyway, it stays offline.
    monkeypatch.setenv("SE_OFFLINE", "true")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in CHROMIUM_ARGS:
        options.add_argument(argument)
    options.add_argument(f"--user-data-dir={tmp_path / 'chromium-profile'}")
    service = Service(executable_path=CHROMEDRIVER)
    chrome = webdriver.Chrome(options=options, service=service)
    try:
        chrome.set_page_load_timeout(WAIT_SECONDS)
        yield chrome
    finally:
        chrome.quit()


@pytest.fixture
def artifacts():
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


def wait(driver):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, WAIT_SECONDS)


def find(driver, selector):
    """Return the element that matches the CSS selector, once it is visible."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions

    return wait(driver).until(expected_conditions.visibility_of_element_located((By.CSS_SELECTOR, selector)))


def click(driver, selector):
    """Click the element that matches the CSS selector, once it is visible and enabled."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions

    wait(driver).until(expected_conditions.element_to_be_clickable((By.CSS_SELECTOR, selector))).click()


def click_link(driver, container_id, link_text):
    """Click the link with this text inside the element with this id."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions

    xpath = f"//*[@id='{container_id}']//a[normalize-space()='{link_text}']"
    wait(driver).until(expected_conditions.element_to_be_clickable((By.XPATH, xpath))).click()


def fill(driver, selector, text):
    """Replace the value of a text field, as a person would by clearing it and typing."""
    field = find(driver, selector)
    field.clear()
    field.send_keys(text)


def choose(driver, selector, *, label=None, value=None):
    """Select one option of a select element by its label or its value."""
    from selenium.webdriver.support.ui import Select

    select = Select(find(driver, selector))
    if label is not None:
        select.select_by_visible_text(label)
    else:
        select.select_by_value(value)


def text_of(driver, selector):
    return find(driver, selector).text


def submit(driver, selector):
    """Click a submit button and wait until the browser has left the page that contained it."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions

    old_page = driver.find_element(By.TAG_NAME, "html")
    click(driver, selector)
    wait(driver).until(expected_conditions.staleness_of(old_page))


def wait_for_url(driver, url):
    from selenium.webdriver.support import expected_conditions

    wait(driver).until(expected_conditions.url_to_be(url))


def save_full_page_screenshot(driver, path):
    """Save a PNG of the whole page, including the part below the viewport, through the Chrome DevTools Protocol."""
    size = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
    shot = driver.execute_cdp_cmd(
        "Page.captureScreenshot",
        {
            "format": "png",
            "captureBeyondViewport": True,
            "clip": {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1},
        },
    )
    Path(path).write_bytes(base64.b64decode(shot["data"]))


def log_in(driver, gateway, username):
    driver.get(f"{gateway}/console/login/")
    fill(driver, "#id_username", username)
    fill(driver, "#id_password", PASSWORD)
    submit(driver, "input[type=submit]")
    wait_for_url(driver, f"{gateway}/console/")


def add_upstream(driver, gateway, name, target_url):
    driver.get(f"{gateway}/console/routing/upstream/add/")
    fill(driver, "#id_name", name)
    fill(driver, "#id_targets-0-url", target_url)
    submit(driver, "input[name=_save]")
    wait_for_url(driver, f"{gateway}/console/routing/upstream/")


def fill_route(driver, name, upstream_name, paths):
    fill(driver, "#id_name", name)
    choose(driver, "#id_upstream", label=upstream_name)
    fill(driver, "#id_paths", paths)


def add_role_rule(driver, methods, role):
    click(driver, "#rules-group .add-row a")
    fill(driver, "#id_rules-0-methods", methods)
    # The admin's filter_horizontal widget: pick the role in the left box, then move it across.
    choose(driver, "#id_rules-0-roles_from", label=role)
    click(driver, "#id_rules-0-roles_add")


def test_console_route_round_trip(gateway, http, upstream, artifacts, driver):
    log_in(driver, gateway, "root")
    add_upstream(driver, gateway, "orders-service", upstream.url)

    # A pattern without a leading slash is rejected with a message on the paths field.
    driver.get(f"{gateway}/console/routing/route/add/")
    fill_route(driver, "orders", "orders-service", "api/no-slash")
    submit(driver, "input[name=_save]")
    assert "must start with '/'" in text_of(driver, ".field-paths .errorlist")

    fill(driver, "#id_paths", "/api/orders/**")
    add_role_rule(driver, "GET", "orders-reader")
    submit(driver, "input[name=_save]")
    wait_for_url(driver, f"{gateway}/console/routing/route/")
    assert "orders" in text_of(driver, "#result_list")
    save_full_page_screenshot(driver, artifacts / "route-list.png")

    driver.get(f"{gateway}/console/")
    click_link(driver, "observe-module", "Route tester")
    wait_for_url(driver, f"{gateway}/console/observe/tester/")
    choose(driver, "#id_method", value="GET")
    fill(driver, "#id_target", "/api/orders/7?expand=items")
    choose(driver, "#id_roles", value="orders-reader")
    submit(driver, "input[name=_test]")
    find(driver, "#tester-result")
    assert text_of(driver, "#tester-decision").startswith("allow")
    assert f"{upstream.url}/api/orders/7?expand=items" in text_of(driver, "#tester-upstream-calls")
    save_full_page_screenshot(driver, artifacts / "route-tester.png")
    assert upstream.received == []

    token = http.post(f"{gateway}/auth/token", json={"username": "olivia", "password": PASSWORD}).json()["access"]
    response = http.get(f"{gateway}/api/orders/7?expand=items", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200
    assert response.json()["target"] == "/api/orders/7?expand=items"
