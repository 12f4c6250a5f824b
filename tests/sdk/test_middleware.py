"""SextantMiddleware records a FastAPI app's requests, by route template, in a real Sextant."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, HTTPException
from fastapi.testclient import TestClient

from sextant.sdk import Client, SextantMiddleware
from sextant.sdk.middleware import UNMATCHED_ROUTE
from sextant.sdk.testing import Account, SextantServer


def build_app(client: Client) -> FastAPI:
    app = FastAPI()

    @app.get("/items/{item_id}")
    def get_item(item_id: int) -> dict[str, Any]:
        return {"id": item_id, "name": f"item {item_id}"}

    @app.post("/items", status_code=201)
    def create_item(item: dict[str, Any]) -> dict[str, Any]:
        return {"id": 99, **item}

    @app.get("/teapot")
    def teapot() -> None:
        raise HTTPException(status_code=418, detail="short and stout")

    @app.get("/crash")
    def crash() -> None:
        raise RuntimeError("boom")

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    app.add_middleware(SextantMiddleware, client=client, exclude_paths=["/health"])
    return app


def test_middleware_records_route_templates(
    sextant_server: SextantServer, account: Account
) -> None:
    client = Client(account.write_key, sextant_server.url, flush_interval=0.05)
    body = b'{"name": "lamp", "price": 12}'
    with TestClient(build_app(client), raise_server_exceptions=False) as http:
        assert http.get("/items/1").status_code == 200
        assert http.get("/items/2").status_code == 200
        created = http.post("/items", content=body, headers={"Content-Type": "application/json"})
        assert created.status_code == 201
        assert http.get("/teapot").status_code == 418
        assert http.get("/crash").status_code == 500
        assert http.get("/no/such/page").status_code == 404
        assert http.get("/health").status_code == 200  # excluded
    assert client.flush(timeout=30)
    client.shutdown()

    events = sextant_server.wait_for_events(account, expected=6)
    assert len(events) == 6
    assert all(e["event"] == "$api_request" and e["type"] == "api" for e in events)
    routes = sorted((e["http_method"], e["http_route"], e["http_status"]) for e in events)
    assert routes == [
        ("GET", UNMATCHED_ROUTE, 404),
        ("GET", "/crash", 500),
        ("GET", "/items/{item_id}", 200),
        ("GET", "/items/{item_id}", 200),
        ("GET", "/teapot", 418),
        ("POST", "/items", 201),
    ]
    post = next(e for e in events if e["http_method"] == "POST")
    assert post["request_bytes"] == len(body)
    assert post["response_bytes"] == len(created.content)
    assert all(e["duration_ms"] > 0 for e in events)
    # The client address is not sent, only a stable pseudonymous id.
    assert all(e["distinct_id"].startswith("ip:") for e in events)
    assert "testclient" not in {e["distinct_id"] for e in events}
