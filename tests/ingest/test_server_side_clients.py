"""A backend posting events with an HTTP library is not the visitor, and not a bot."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from sextant.ingest.enrich import visitor_user_agent

CHROME = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Safari/537.36"
)


@pytest.mark.parametrize(
    "header",
    [
        "curl/8.5.0",
        "python-requests/2.32.3",
        "python-httpx/0.28.1",
        "Go-http-client/2.0",
        "okhttp/4.12.0",
        "axios/1.7.2",
        "node-fetch/1.0",
        "sextant-python/0.1.0",
    ],
)
def test_http_libraries_are_not_visitors(header: str) -> None:
    assert visitor_user_agent(header) == ""


@pytest.mark.parametrize("header", [CHROME, "Mozilla/5.0 (compatible; Googlebot/2.1)"])
def test_browsers_and_crawlers_are(header: str) -> None:
    assert visitor_user_agent(header) == header


def stored(client: TestClient, project_id: str, distinct_id: str) -> dict[str, Any]:
    store = client.app.state.events  # type: ignore[attr-defined]
    return store.query(
        "SELECT browser, device_type, is_bot FROM events FINAL "
        "WHERE project_id = {p:UUID} AND distinct_id = {d:String}",
        {"p": project_id, "d": distinct_id},
    ).dicts()[0]


def test_server_side_events_count_and_crawlers_do_not(
    client: TestClient, project: dict[str, Any], write_key: str, read_key: str
) -> None:
    def send(distinct_id: str, user_agent: str) -> None:
        response = client.post(
            "/api/v1/events",
            json={"event": "signup", "user_id": distinct_id},
            headers={"X-API-Key": write_key, "User-Agent": user_agent},
        )
        assert response.status_code == 202, response.text

    send("from-backend", "python-requests/2.32.3")
    send("from-browser", CHROME)
    send("from-crawler", "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)")

    assert stored(client, project["id"], "from-backend") == {
        "browser": "",
        "device_type": "",
        "is_bot": 0,
    }
    assert stored(client, project["id"], "from-browser")["browser"] == "Chrome"
    assert stored(client, project["id"], "from-crawler")["is_bot"] == 1

    summary = client.get(
        f"/api/v1/projects/{project['id']}/stats/summary",
        params={"date_from": "-1d", "fresh": "true"},
        headers={"X-API-Key": read_key},
    ).json()
    assert summary["unique_users"] == 2  # the backend's user and the browser's, not the crawler
