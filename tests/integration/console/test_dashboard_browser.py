"""The dashboard in a real headless Chromium (Debian's chromium + chromium-driver, driven by selenium):
it renders the incidents of the emulated cluster, shows an RBAC refusal from the API server verbatim, and
its approve button moves an incident out of AwaitingApproval through the real operator, the step states
changing on the page without a reload (server-sent events fed by a watch)."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from tests.integration.console.conftest import APPROVAL_SPEC, PLUGIN, ConsoleEnv, png_size
from tradesense_sandbox.runner import OperatorHandle

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
FORBIDDEN = ('tradesenseincidents.ops.tradesense.io "db-slow" is forbidden: User "alice" cannot patch resource '
             '"tradesenseincidents" in API group "ops.tradesense.io"')


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[webdriver.Chrome]:
    if shutil.which(CHROMIUM) is None or shutil.which(CHROMEDRIVER) is None:
        pytest.skip("chromium and chromium-driver not installed (make deps installs the Debian packages)")
    os.environ.setdefault("SE_OFFLINE", "true")  # never let selenium-manager look for a browser to download
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", "--window-size=1400,820", f"--user-data-dir={tmp_path / 'chromium'}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=CHROMEDRIVER))
    try:
        yield driver
    finally:
        driver.quit()


def text_of(driver: webdriver.Chrome, css: str) -> str:
    """Read through the DOM in one call: the page re-renders on every event, so element handles go stale."""
    return str(driver.execute_script("const e = document.querySelector(arguments[0]); return e ? e.textContent : '';",
                                     css))


def click(driver: webdriver.Chrome, css: str) -> None:
    driver.execute_script("document.querySelector(arguments[0]).click();", css)


def wait_text(driver: webdriver.Chrome, css: str, expected: str, timeout: float = 30.0) -> None:
    WebDriverWait(driver, timeout).until(lambda d: text_of(d, css) == expected,
                                         f"{css} never showed {expected!r} (last: {text_of(driver, css)!r})")


async def test_dashboard_renders_refuses_and_approves_live(
    console_env: ConsoleEnv, console_operator: OperatorHandle, browser: webdriver.Chrome, tmp_path: Path
) -> None:
    env = console_env
    env.create("db-slow", APPROVAL_SPEC)
    env.create("cache-check", {"runbook": "cache-hit-rate-low", "severity": "P3", "dryRun": True})
    await env.wait_phase("db-slow", "AwaitingApproval")
    await env.wait_phase("cache-check", "Succeeded", "Failed")
    server = await asyncio.create_subprocess_exec(PLUGIN, "dashboard", env=env.env(), stdout=asyncio.subprocess.PIPE)
    try:
        assert server.stdout is not None
        banner = (await asyncio.wait_for(server.stdout.readline(), 30)).decode()
        match = re.search(r"(http://127\.0\.0\.1:\d+/)", banner)
        assert match, banner
        assert f"namespace {env.namespace}" in banner

        browser.get(match.group(1))
        WebDriverWait(browser, 30).until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#incidents li[data-name]")) == 2)
        listed = browser.execute_script(
            "return [...document.querySelectorAll('#incidents li')].map((li) => li.dataset.name);")
        assert sorted(listed) == ["cache-check", "db-slow"]
        assert "cache-hit-rate-low" in text_of(browser, '#incidents li[data-name="cache-check"]')
        click(browser, '#incidents li[data-name="db-slow"]')
        wait_text(browser, "#incident-phase", "AwaitingApproval")
        wait_text(browser, '[data-step="scale-backend"] .state', "AwaitingApproval")
        assert text_of(browser, '[data-step="check-pods"] .state') == "Succeeded"
        assert "pods" in text_of(browser, '[data-step="check-pods"] .evidence')
        browser.execute_script("window.__sameDocument = true;")

        screenshot = browser.get_screenshot_as_png()
        width, height = png_size(screenshot)
        assert width >= 1000
        assert height >= 600

        # RBAC says no: the page shows the API server's own message, and nothing changed
        env.cluster.faults.add("PATCH", r"/tradesenseincidents/db-slow\?.*fieldManager=kubectl-tradesense",
                               status=403, message=FORBIDDEN)
        click(browser, 'button[data-approve="scale-backend"]')
        WebDriverWait(browser, 15).until(lambda d: FORBIDDEN in text_of(d, "#error"))
        assert env.incident("db-slow")["spec"].get("approvals", []) == []

        click(browser, 'button[data-approve="scale-backend"]')
        wait_text(browser, '[data-step="scale-backend"] .state', "Succeeded")
        wait_text(browser, "#incident-phase", "Succeeded")
        assert browser.execute_script("return window.__sameDocument === true;"), "the page reloaded"
        assert browser.execute_script("return document.getElementById('error').hidden;")
        incident = env.incident("db-slow")
        assert incident["spec"]["approvals"] == ["scale-backend"]
        assert incident["status"]["phase"] == "Succeeded"
        assert env.cluster.get("apps/v1", "Deployment", "backend", env.namespace)["spec"]["replicas"] == 5
    finally:
        server.terminate()
        await server.wait()
