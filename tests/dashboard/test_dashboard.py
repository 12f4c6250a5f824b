"""The dashboard in real Chromium: sign-up and management screens, and every report page
rendering seeded data without console errors. Screenshots go to artifacts/screenshots/."""

from __future__ import annotations

import json
import re
from urllib.parse import quote

import httpx
import pytest
from browser_helpers import PageErrors, answer_dialogs, screenshot
from fastapi.testclient import TestClient
from playwright.sync_api import Browser, Page, expect

from sextant.sdk.testing import Account, SextantServer


def sign_in(page: Page, server: SextantServer, account: Account) -> None:
    page.goto(server.url + "/#/login")
    page.fill("#email", account.email)
    page.fill("#password", account.password)
    page.click("button[type=submit]")
    expect(page).to_have_url(re.compile(rf"#/p/{account.project_id}/overview"))


def test_dashboard_assets_are_served_safely(client: TestClient) -> None:
    index = client.get("/")
    assert index.status_code == 200
    assert "default-src 'self'" in index.headers["content-security-policy"]
    assert '<script type="module" src="/assets/js/app.js">' in index.text
    assert client.get("/assets/js/app.js").headers["content-type"].startswith("text/javascript")
    assert client.get("/assets/style.css").status_code == 200
    for probe in ("/assets/../router.py", "/assets/%2e%2e/router.py", "/assets/nope.js"):
        assert client.get(probe).status_code == 404, probe


@pytest.mark.browser
def test_report_pages_render_seeded_data(
    page: Page, page_errors: PageErrors, dashboard_server: SextantServer, seeded: Account
) -> None:
    base = f"{dashboard_server.url}/#/p/{seeded.project_id}"
    sign_in(page, dashboard_server, seeded)

    # Overview: cards (bounce rate and visit length from the visits report), the chart and
    # the top lists.
    expect(page.locator(".stat-value").first).to_have_text(re.compile(r"[1-9]"))
    bounce = page.locator(".stat", has_text="Bounce rate").locator(".stat-value")
    expect(bounce).to_have_text(re.compile(r"^\d{1,3}%$"))
    expect(page.locator(".stat", has_text="Visit duration")).to_contain_text(
        re.compile(r"\d+[smh]")
    )
    expect(page.locator(".chart svg path.line").first).to_be_visible()
    pages_card = page.locator("section.card", has_text="Top pages")
    expect(pages_card.locator(".barlist li").first).to_be_visible()
    expect(page.locator("section.card", has_text="Referrers")).to_contain_text("google.com")
    screenshot(page, "overview")

    # Compare with the previous period draws the dashed line.
    page.get_by_label("Compare with previous period").check()
    expect(page.locator(".chart svg path.line.prev")).to_have_count(1)

    # Clicking a row filters the whole page.
    first_page = pages_card.locator(".barlist button.row").first
    path = first_page.inner_text()
    first_page.click()
    expect(page).to_have_url(re.compile(r"[?&]f="))
    expect(page.locator(".chip")).to_contain_text(f"Page is {path}")
    expect(page.locator(".stat-value").first).to_have_text(re.compile(r"[1-9]"))
    screenshot(page, "overview-filtered")

    # Keyboard: a row is a button; Enter on it adds its filter too.
    page.locator(".chip button").first.click()
    expect(page.locator(".chip")).to_have_count(0)
    referrers = page.locator("section.card", has_text="Referrers")
    referrers.locator(".barlist button.row", has_text="google.com").focus()
    page.keyboard.press("Enter")
    expect(page.locator(".chip")).to_contain_text("Referrer is google.com")

    # An event of the Events card opens that event's activity feed, over the same range.
    page.goto(f"{base}/overview?from=-30d")
    goal = page.locator("section.card", has_text="Goals and events").locator(
        ".barlist button.row", has_text="signup"
    )
    goal.click()
    expect(page).to_have_url(re.compile(r"/events\?from=-30d&event=signup"))
    expect(page.locator("tbody tr").first).to_contain_text("signup")
    assert set(page.locator("tbody tr td:first-child").all_inner_texts()) == {"signup"}
    page.goto(f"{base}/overview")

    # Date range: presets and a custom range.
    page.get_by_label("Date range").select_option("-7d")
    expect(page).to_have_url(re.compile(r"from=-7d"))
    expect(page.locator(".stat-value").first).to_have_text(re.compile(r"\d"))
    page.get_by_label("Date range").select_option("custom")
    page.get_by_label("From").fill("2020-01-01")
    page.get_by_role("button", name="Apply").click()
    expect(page).to_have_url(re.compile(r"from=2020-01-01&to=\d{4}-\d{2}-\d{2}"))
    expect(page.locator(".stat-value").first).to_have_text(re.compile(r"[1-9]"))
    # A start after the end is refused next to the fields, and the page keeps its range.
    page.get_by_label("From").fill("2020-01-20")
    page.get_by_label("To", exact=True).fill("2020-01-10")
    page.get_by_role("button", name="Apply").click()
    assert "after the end" in page.get_by_label("From").evaluate("el => el.validationMessage")
    expect(page).to_have_url(re.compile(r"from=2020-01-01&to="))
    expect(page.locator(".stat-value").first).to_have_text(re.compile(r"[1-9]"))

    # Funnel with four steps.
    steps = quote(json.dumps(["$pageview", "signup", "activated", "purchase"]))
    page.goto(f"{base}/funnels?from=-30d&steps={steps}")
    expect(page.locator(".funnel-step")).to_have_count(4)
    expect(page.locator(".funnel-step").first).to_contain_text("100.0%")
    screenshot(page, "funnels")

    page.goto(f"{base}/retention?from=-30d")
    expect(page.locator(".heat td.cell").first).to_have_text("100.0%")
    screenshot(page, "retention")

    page.goto(f"{base}/api?from=-30d")
    rows = page.locator("section.card", has_text="Endpoints").locator("tbody tr")
    expect(rows.first).to_contain_text("/api/")
    expect(page.locator(".stats")).to_contain_text("p95")
    page.get_by_role("button", name="p95", exact=True).last.click()
    expect(page.locator("th[aria-sort]")).to_contain_text("p95")
    screenshot(page, "api")

    page.goto(f"{base}/web3?from=-30d")
    expect(page.locator("section.card", has_text="Volume by chain")).to_contain_text("ETH")
    screenshot(page, "web3")

    page.goto(f"{base}/events?from=-30d")
    expect(page.locator("tbody tr").first).to_be_visible()
    screenshot(page, "events")
    link = page.locator("tbody tr td a").first
    name = link.inner_text().strip()
    link.click()
    expect(page.locator("h2", has_text="Properties")).to_be_visible()
    # The event's own fields, not its name spelled out letter by letter.
    expect(page.locator(".page-head h1")).to_have_text(name)
    expect(page.locator("dl.kv dt", has_text="event_id")).to_be_visible()
    expect(page.locator("dl.kv dt", has_text="distinct_id")).to_be_visible()
    page.goto(f"{base}/events/person/anon-7-1")
    expect(page.locator(".journey li").first).to_be_visible()
    screenshot(page, "person")

    page.goto(f"{base}/live")
    expect(page.locator(".live-count")).to_have_text(re.compile(r"\d"))
    expect(page.get_by_text("connected", exact=True)).to_be_visible()
    sent = httpx.post(
        f"{dashboard_server.url}/api/v1/events",
        headers={"X-API-Key": seeded.write_key},
        json={"event": "live_probe", "anonymous_id": "live-visitor", "properties": {"n": 1}},
        timeout=30,
    )
    assert sent.status_code == 202, sent.text
    expect(page.locator(".stream li strong", has_text="live_probe")).to_be_visible(timeout=20_000)
    expect(page.get_by_text("1 event since you opened this page")).to_be_visible()
    screenshot(page, "live")

    page.goto(f"{base}/settings")
    expect(page.locator("h2", has_text="API keys")).to_be_visible()
    screenshot(page, "settings")

    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(f"{base}/overview?from=-30d")
    expect(page.locator(".stat-value").first).to_have_text(re.compile(r"[1-9]"))
    screenshot(page, "overview-phone")
    assert page_errors.messages == []


@pytest.mark.browser
def test_sign_up_create_project_keys_and_snippet(
    browser: Browser, dashboard_server: SextantServer
) -> None:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    errors = PageErrors(page)
    dialogs = answer_dialogs(page)
    page.goto(dashboard_server.url + "/")
    expect(page).to_have_url(re.compile("#/login"))
    screenshot(page, "sign-in")
    page.get_by_role("link", name="Create an account").click()
    page.fill("#name", "Grace Hopper")
    page.fill("#email", "grace@example.com")
    page.fill("#password", "onlyletters")
    page.click("button[type=submit]")
    expect(page.locator(".error")).to_contain_text("password")
    page.fill("#password", "compilers-1952")
    page.click("button[type=submit]")

    expect(page).to_have_url(re.compile("#/welcome"))
    page.fill("#org-name", "Navy Labs")
    page.get_by_role("button", name="Create organisation").click()
    page.fill("#project-name", "Docs site")
    page.get_by_role("button", name="Create project").click()

    snippet = page.locator("#snippet")
    expect(snippet).to_contain_text(f'src="{dashboard_server.url}/t.js"')
    expect(snippet).to_contain_text('data-key="sx_w_')
    screenshot(page, "new-project")

    page.fill("#key-name", "Reporting")
    page.select_option("#key-kind", "read")
    page.get_by_role("button", name="Create key").click()
    secret = page.locator("#new-secret")
    expect(secret).to_have_text(re.compile(r"^sx_r_"))
    row = page.locator("tr", has_text="Reporting")
    expect(row).to_contain_text("active")
    row.get_by_role("button", name="Rotate").click()
    expect(page.locator(".secret")).to_contain_text("Rotated")
    page.locator("tr", has_text="Reporting").get_by_role("button", name="Revoke").click()
    expect(page.locator("tr", has_text="Reporting")).to_contain_text("revoked")

    # Lowering retention asks first: older events are deleted for good.
    expect(page.locator("section.card", has_text="Danger zone")).to_contain_text(
        "deletes all of its events"
    )
    page.fill("#p-retention", "30")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_text("Project saved")).to_be_visible()
    expect(page.locator("#p-retention")).to_have_value("30")
    assert any("deleted for good" in message for message in dialogs), dialogs

    page.get_by_role("link", name="Overview").click()
    expect(page.locator(".empty")).to_contain_text("No events in this period yet")
    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(re.compile("#/login"))
    context.close()
    # The browser logs the deliberate 422 (weak password); nothing else may appear.
    unexpected = [m for m in errors.messages if "status of 422" not in m]
    assert unexpected == []


@pytest.mark.browser
def test_charts_label_buckets_in_the_projects_time_zone(
    browser: Browser, dashboard_server: SextantServer
) -> None:
    """A Tokyo project seen from a New York browser: its days are Tokyo's days (a bucket
    starts at Tokyo midnight, the afternoon before in New York)."""
    import datetime as dt
    from zoneinfo import ZoneInfo

    account = dashboard_server.bootstrap(timezone="Asia/Tokyo")
    response = httpx.post(
        f"{dashboard_server.url}/api/v1/events",
        json={"event": "signup", "anonymous_id": "tz-1"},
        headers={"X-API-Key": account.write_key},
    )
    assert response.status_code == 202
    context = browser.new_context(timezone_id="America/New_York", locale="en-US")
    try:
        page = context.new_page()
        sign_in(page, dashboard_server, account)
        page.goto(f"{dashboard_server.url}/#/p/{account.project_id}/overview?from=-7d")
        axis = page.locator(".chart svg text.axis[text-anchor=end]").last
        today = dt.datetime.now(ZoneInfo("Asia/Tokyo"))
        expect(axis).to_have_text(f"{today:%b} {today.day}")
    finally:
        context.close()


@pytest.mark.browser
def test_a_viewer_sees_settings_without_errors(
    browser: Browser, dashboard_server: SextantServer
) -> None:
    """A viewer may not list keys: the page says so, and asks the server nothing it must
    refuse (no 403 in the console), and offers no New project."""
    owner = dashboard_server.bootstrap()
    url = dashboard_server.url
    viewer = {"email": "viewer-page@example.com", "password": "read-only-42", "name": "Vi"}
    assert httpx.post(f"{url}/api/v1/auth/register", json=viewer).status_code == 201
    added = httpx.post(
        f"{url}/api/v1/orgs/{owner.org_id}/members",
        json={"email": viewer["email"], "role": "viewer"},
        headers={"Authorization": f"Bearer {owner.access_token}"},
    )
    assert added.status_code in (200, 201), added.text
    context = browser.new_context()
    try:
        page = context.new_page()
        errors = PageErrors(page)
        page.goto(url + "/#/login")
        page.fill("#email", viewer["email"])
        page.fill("#password", viewer["password"])
        page.click("button[type=submit]")
        expect(page).to_have_url(re.compile(r"#/p/"))
        page.goto(f"{url}/#/p/{owner.project_id}/settings")
        expect(page.get_by_text("You cannot see this project's keys.")).to_be_visible()
        page.goto(f"{url}/#/orgs/{owner.org_id}")
        expect(page.get_by_text("Your role: viewer")).to_be_visible()
        expect(page.get_by_role("link", name="New project")).to_have_count(0)
        assert errors.messages == []
    finally:
        context.close()


@pytest.mark.browser
def test_an_owner_deletes_the_organisation(
    browser: Browser, dashboard_server: SextantServer
) -> None:
    owner = dashboard_server.bootstrap()
    url = dashboard_server.url
    name = httpx.get(
        f"{url}/api/v1/orgs/{owner.org_id}",
        headers={"Authorization": f"Bearer {owner.access_token}"},
    ).json()["name"]
    context = browser.new_context()
    try:
        page = context.new_page()
        errors = PageErrors(page)
        prompts = answer_dialogs(page, name)  # the organisation's name, as the prompt asks
        sign_in(page, dashboard_server, owner)
        page.goto(f"{url}/#/orgs/{owner.org_id}")
        danger = page.locator("section.card", has_text="Danger zone")
        expect(danger).to_contain_text("deletes all of its projects")
        danger.get_by_role("button", name="Delete organisation").click()
        expect(page).not_to_have_url(re.compile(owner.org_id))
        assert len(prompts) == 1
        assert name in prompts[0]
        gone = httpx.get(
            f"{url}/api/v1/projects/{owner.project_id}/stats/summary",
            headers={"X-API-Key": owner.read_key},
        )
        assert gone.status_code in (401, 404), gone.text
        assert errors.messages == []
    finally:
        context.close()


@pytest.mark.browser
def test_settings_export_and_erase_a_persons_data(
    browser: Browser, dashboard_server: SextantServer
) -> None:
    """The Data card: a period's events as a file, one person's data as a file, and the
    person erased (every id linked to them) after a confirmation."""
    owner = dashboard_server.bootstrap()
    url = dashboard_server.url
    batch = [
        {"event": "browse", "anonymous_id": "gdpr-anon", "message_id": "g-1"},
        {"type": "identify", "anonymous_id": "gdpr-anon", "user_id": "gdpr-1", "message_id": "g-2"},
        {"event": "buy", "user_id": "gdpr-1", "message_id": "g-3"},
        {"event": "browse", "anonymous_id": "someone-else", "message_id": "g-4"},
    ]
    sent = httpx.post(
        f"{url}/api/v1/events", json={"batch": batch}, headers={"X-API-Key": owner.write_key}
    )
    assert sent.json()["accepted"] == 4
    dashboard_server.wait_for_events(owner, expected=4)
    context = browser.new_context(accept_downloads=True)
    try:
        page = context.new_page()
        errors = PageErrors(page)
        dialogs = answer_dialogs(page)
        sign_in(page, dashboard_server, owner)
        page.goto(f"{url}/#/p/{owner.project_id}/settings")
        data = page.locator("section.card", has_text="One person's data")
        data.scroll_into_view_if_needed()
        screenshot(page, "settings-data")
        with page.expect_download() as bulk:
            data.get_by_role("button", name="Download").click()
        lines = bulk.value.path().read_text().splitlines()
        assert bulk.value.suggested_filename.endswith("-events.csv")
        assert len(lines) == 1 + 4  # the header and every event
        page.fill("#person-id", "gdpr-1")
        with page.expect_download() as person:
            data.get_by_role("button", name="Export their data").click()
        rows = [json.loads(line) for line in person.value.path().read_text().splitlines()]
        assert {row["message_id"] for row in rows} == {"g-1", "g-2", "g-3"}
        data.get_by_role("button", name="Delete them").click()
        expect(page.get_by_text(re.compile(r"Deleted 3 events of"))).to_be_visible()
        assert any("cannot be undone" in message for message in dialogs)
        left = httpx.get(
            f"{url}/api/v1/projects/{owner.project_id}/events",
            params={"fresh": "true"},
            headers={"X-API-Key": owner.read_key},
        ).json()["results"]
        assert [e["distinct_id"] for e in left] == ["someone-else"]
        assert errors.messages == []
    finally:
        context.close()
