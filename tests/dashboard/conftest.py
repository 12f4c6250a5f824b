"""Browser tests: a real Sextant server (subprocess) seeded through the Python SDK, driven
by Debian's Chromium through Playwright. `make test` installs Chromium when it is missing."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from browser_helpers import PageErrors
from dashboard_seed import seed
from playwright.sync_api import Browser, Page, Playwright, sync_playwright

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


# Module scope, not session: Playwright's sync API keeps an asyncio loop running in this
# thread while it is open, and asyncio tests in later modules could not start their own.
@pytest.fixture(scope="module")
def playwright_instance() -> Iterator[Playwright]:
    if not Path(CHROMIUM).exists() and not shutil.which("chromium"):
        pytest.fail("Chromium is missing: run `make browser` (Debian's chromium package)")
    with sync_playwright() as playwright:
        yield playwright


@pytest.fixture(scope="module")
def browser(playwright_instance: Playwright) -> Iterator[Browser]:
    browser = playwright_instance.chromium.launch(
        executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
    )
    yield browser
    browser.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    yield context.new_page()
    context.close()


@pytest.fixture
def page_errors(page: Page) -> PageErrors:
    return PageErrors(page)
