"""The browser tracker in real Chromium, on a page served from another origin."""

from __future__ import annotations

import gzip
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from browser_helpers import PageErrors
from fastapi.testclient import TestClient
from playwright.sync_api import Browser, Page

from sextant.sdk.testing import Account, SextantServer, free_port

SITE_PAGE = """<!doctype html>
<html><head><title>Home</title>
<script>window.sextant = window.sextant || {{ q: [] }};
  sextant.q.push(["track", "queued_before_load", {{ early: true }}]);</script>
<script defer src="{sextant}/t.js" data-key="{key}" {extra}></script>
</head><body>
<a id="pricing" href="/pricing">Pricing</a>
<a id="out" href="https://example.org/docs">Docs elsewhere</a>
<script>
  document.getElementById("pricing").addEventListener("click", function (e) {{
    e.preventDefault();
    history.pushState({{}}, "", "/pricing");
    document.title = "Pricing";
  }});
  // Stay on the page after the outbound click (the sandbox has no internet).
  document.getElementById("out").addEventListener("click", function (e) {{ e.preventDefault(); }});
</script>
</body></html>"""


# Headless Chromium says "HeadlessChrome" and is (rightly) flagged as a bot, which reports
# exclude; the visitor in these tests is a person using an ordinary Chrome.
DESKTOP_CHROME = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/126.0.0.0 Safari/537.36"
)


class Beacons:
    """Counts the tracker's requests that Sextant acknowledged (202)."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.accepted = 0
        page.on("response", self._response)

    def _response(self, response: Any) -> None:
        if response.url.endswith("/api/v1/collect") and response.status == 202:
            self.accepted += 1

    def wait(self, count: int, timeout: float = 30.0) -> None:
        """Keep the page open until `count` beacons were delivered (closing it cancels them)."""
        deadline = time.monotonic() + timeout
        while self.accepted < count and time.monotonic() < deadline:
            self.page.wait_for_timeout(50)
        assert self.accepted == count


@pytest.fixture
def site() -> Iterator[dict[str, Any]]:
    """A customer's web site on its own origin; pages are set per test."""
    pages: dict[str, str] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
            body = pages.get("html", "").encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield {"url": f"http://127.0.0.1:{server.server_port}", "pages": pages}
    server.shutdown()
    server.server_close()


def test_tracker_is_small_and_cacheable(client: TestClient) -> None:
    response = client.get("/t.js", headers={"Accept-Encoding": "gzip"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/javascript")
    assert response.headers["access-control-allow-origin"] == "*"
    assert "max-age" in response.headers["cache-control"]
    raw = client.get("/t.js", headers={"Accept-Encoding": "identity"}).content
    assert len(gzip.compress(raw, 9)) < 2048
    assert b"sendBeacon" in raw
    assert b"pushState" in raw
    etag = response.headers["etag"]
    assert client.get("/t.js", headers={"If-None-Match": etag}).status_code == 304


@pytest.mark.browser
def test_tracker_sends_page_views_across_spa_navigation_and_custom_events(
    browser: Browser, dashboard_server: SextantServer, site: dict[str, Any]
) -> None:
    account: Account = dashboard_server.bootstrap()
    site["pages"]["html"] = SITE_PAGE.format(
        sextant=dashboard_server.url, key=account.write_key, extra=""
    )
    context = browser.new_context(user_agent=DESKTOP_CHROME)
    page: Page = context.new_page()
    errors = PageErrors(page)
    beacons = Beacons(page)
    page.goto(site["url"] + "/")
    page.wait_for_function("window.sextant && typeof window.sextant.track === 'function'")
    page.click("#pricing")  # history.pushState: a single-page-app navigation
    page.wait_for_function("location.pathname === '/pricing'")
    page.evaluate("location.hash = 'faq'")  # hashchange
    page.evaluate("sextant.track('signup', {plan: 'pro', seats: 3})")
    page.click("#out")  # outbound link
    page.evaluate("sextant.identify('user-42', {email: 'ada@example.com'})")
    # Hostile input must not throw into the page.
    page.evaluate("var a = {}; a.self = a; sextant.track('circular', a); sextant.track()")
    beacons.wait(7)
    context.close()
    assert errors.messages == []

    events = dashboard_server.wait_for_events(account, expected=7)
    assert len(events) == 7
    views = sorted((e for e in events if e["event"] == "$pageview"), key=lambda e: e["timestamp"])
    assert [e["path"] for e in views] == ["/", "/pricing", "/pricing"]
    assert views[2]["url"].endswith("/pricing#faq")
    assert views[1]["title"] == "Pricing"
    assert views[1]["referrer"] == site["url"] + "/"  # the previous in-app page
    assert all(e["library"] == "sextant-js" for e in events)
    assert len({e["anonymous_id"] for e in events}) == 1
    assert len({e["session_id"] for e in events if e["session_id"]}) == 1
    by_name = {e["event"]: e for e in events}
    assert by_name["signup"]["properties"] == {"plan": "pro", "seats": 3}
    assert by_name["queued_before_load"]["properties"] == {"early": True}
    assert by_name["$outbound_click"]["properties"]["url"] == "https://example.org/docs"
    assert by_name["$identify"]["user_id"] == "user-42"
    assert by_name["$pageview"]["browser"].startswith("Chrom")


@pytest.mark.browser
def test_tracker_honours_do_not_track_when_asked(
    browser: Browser, dashboard_server: SextantServer, site: dict[str, Any]
) -> None:
    account = dashboard_server.bootstrap()
    context = browser.new_context(user_agent=DESKTOP_CHROME)
    context.add_init_script("Object.defineProperty(navigator, 'doNotTrack', {get: () => '1'})")
    page = context.new_page()
    beacons = Beacons(page)
    site["pages"]["html"] = SITE_PAGE.format(
        sextant=dashboard_server.url, key=account.write_key, extra="data-respect-dnt"
    )
    page.goto(site["url"] + "/")
    page.wait_for_function("window.sextant && typeof window.sextant.track === 'function'")
    page.evaluate("sextant.track('while_dnt')")
    # Same visitor preference, but this site does not opt in to honouring it.
    site["pages"]["html"] = SITE_PAGE.format(
        sextant=dashboard_server.url, key=account.write_key, extra=""
    )
    page.goto(site["url"] + "/")
    page.wait_for_function("window.sextant && typeof window.sextant.track === 'function'")
    page.evaluate("sextant.track('after_dnt')")
    # Only the second page load sent anything: its page view, queued event and after_dnt.
    beacons.wait(3)
    context.close()
    events = dashboard_server.wait_for_events(account, expected=3)
    names = sorted(e["event"] for e in events)
    assert names == ["$pageview", "after_dnt", "queued_before_load"]
