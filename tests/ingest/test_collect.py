"""Browser beacon `POST /api/v1/collect`: text/plain JSON with the key inside, CORS."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi.testclient import TestClient

FIREFOX = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:121.0) Gecko/20100101 Firefox/121.0"


def test_beacon_text_plain_with_key_in_body(
    client: TestClient, write_key: str, project: dict[str, Any], stored: Any
) -> None:
    body = orjson.dumps(
        {
            "write_key": write_key,
            "batch": [
                {
                    "type": "page",
                    "anonymous_id": "b1",
                    "context": {"page": {"url": "https://blog.example/post?fbclid=zz"}},
                }
            ],
        }
    )
    response = client.post(
        "/api/v1/collect",
        content=body,
        headers={
            "Content-Type": "text/plain;charset=UTF-8",
            "Origin": "https://blog.example",
            "User-Agent": FIREFOX,
        },
    )
    assert response.status_code == 202, response.text
    assert response.headers["access-control-allow-origin"] == "*"
    [row] = stored.events(project["id"])
    assert (row["event"], row["host"], row["click_id"]) == (
        "$pageview",
        "blog.example",
        "fbclid=zz",
    )
    assert (row["browser"], row["os"]) == ("Firefox", "Windows")  # from the request header
    assert "write_key" not in row["properties"]


def test_beacon_single_event_with_camel_case_key(
    client: TestClient, write_key: str, project: dict[str, Any], stored: Any
) -> None:
    body = orjson.dumps({"writeKey": write_key, "event": "click", "anonymous_id": "b2"})
    response = client.post("/api/v1/collect", content=body, headers={"Content-Type": "text/plain"})
    assert response.status_code == 202, response.text
    assert stored.count(project["id"]) == 1


def test_preflight_allows_any_origin(client: TestClient) -> None:
    for path in ("/api/v1/collect", "/api/v1/events", "/v1/batch"):
        response = client.options(
            path,
            headers={
                "Origin": "https://anywhere.example",
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "content-type,x-api-key",
            },
        )
        assert response.status_code == 204, path
        assert response.headers["access-control-allow-origin"] == "*"
        assert "POST" in response.headers["access-control-allow-methods"]
        assert "X-API-Key" in response.headers["access-control-allow-headers"]


def test_beacon_errors_carry_cors_headers(client: TestClient) -> None:
    response = client.post(
        "/api/v1/collect",
        content=b'{"event": "x", "anonymous_id": "b"}',
        headers={"Content-Type": "text/plain", "Origin": "https://x.example"},
    )
    assert response.status_code == 401
    assert response.headers["access-control-allow-origin"] == "*"
    response = client.post(
        "/api/v1/collect", content=b"{oops", headers={"Content-Type": "text/plain"}
    )
    assert response.status_code == 400
    assert response.headers["access-control-allow-origin"] == "*"
    assert "line 1, column 2" in response.json()["error"]["message"]
