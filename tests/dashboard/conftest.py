"""Browser tests: a real Sextant server (subprocess) seeded through the Python SDK, driven
by Debian's Chromium through Playwright. `make test` installs Chromium when it is missing."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from dashboard_seed import seed
from playwright.sync_api import Browser, ConsoleMessage, Page, Playwright, sync_playwright

from sextant.sdk import Client
from sextant.sdk.testing import Account, SextantServer

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"


@pytest.fixture(scope="session")
def dashboard_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SextantServer]:
    with SextantServer(tmp_path_factory.mktemp("dashboard-server")) as server:
        yield server


@pytest.fixture(scope="session")
def seeded(dashboard_server: SextantServer) -> Account:
    """An account whose project holds four weeks of web, funnel, API and Web3 events."""
    account = dashboard_server.bootstrap()
    client = Client(account.write_key, dashboard_server.url, batch_size=500)
    sent = seed(client, visitors=160)
    assert client.flush(timeout=60)
    client.shutdown()
    assert client.stats.sent == sent, client.stats
    dashboard_server.wait_for_events(account, expected=1)
    return account


@pytest.fixture(scope="session")
def playwright_instance() -> Iterator[Playwright]:
    if not Path(CHROMIUM).exists() and not shutil.which("chromium"):
        pytest.fail("Chromium is missing: run `make browser` (Debian's chromium package)")
    with sync_playwright() as playwright:
        yield playwright


@pytest.fixture(scope="session")
def browser(playwright_instance: Playwright) -> Iterator[Browser]:
    browser = playwright_instance.chromium.launch(
        executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
    )
    yield browser
    browser.close()


class PageErrors:
    """Console errors and uncaught exceptions of one page."""

    def __init__(self, page: Page) -> None:
        self.messages: list[str] = []
        page.on("console", self._console)
        page.on("pageerror", lambda exc: self.messages.append(f"pageerror: {exc}"))

    def _console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.messages.append(f"console.error: {message.text}")


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    yield context.new_page()
    context.close()


@pytest.fixture
def page_errors(page: Page) -> PageErrors:
    return PageErrors(page)


def screenshot(page: Page, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
