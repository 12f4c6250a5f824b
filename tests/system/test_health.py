"""Liveness, readiness (with a store down), metrics, request ids and the error shape."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from sextant import __version__
from sextant.app import create_app
from sextant.config import Settings


def test_liveness(client: TestClient) -> None:
    response = client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "version": __version__}


def test_readiness_reports_each_store(client: TestClient) -> None:
    response = client.get("/health/ready")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "ok"
    checks = {c["name"]: c for c in body["checks"]}
    assert set(checks) == {"database", "event_store"}  # no Redis configured
    assert checks["database"] == {
        "name": "database",
        "status": "ok",
        "backend": "sqlite",
        "error": None,
    }
    assert checks["event_store"]["backend"] == "chdb"
    assert checks["event_store"]["status"] == "ok"


def test_readiness_checks_redis_when_configured(make_client: Any) -> None:
    with_redis = make_client(redis_url="redis://127.0.0.1:6379/15")
    response = with_redis.get("/health/ready")
    assert response.status_code == 200, response.text
    checks = {c["name"]: c["status"] for c in response.json()["checks"]}
    assert checks == {"database": "ok", "event_store": "ok", "redis": "ok"}


def test_readiness_is_503_naming_the_store_that_is_down(make_client: Any) -> None:
    broken = make_client(redis_url="redis://127.0.0.1:1/0")  # nothing listens on port 1
    response = broken.get("/health/ready")
    assert response.status_code == 503
    assert int(response.headers["Retry-After"]) >= 1
    error = response.json()["error"]
    assert error["code"] == "not_ready"
    assert error["message"] == "not ready: redis unavailable"
    statuses = {d["name"]: d["status"] for d in error["details"]}
    assert statuses == {"database": "ok", "event_store": "ok", "redis": "down"}
    # Liveness does not depend on the stores.
    assert broken.get("/health").status_code == 200


def test_readiness_is_503_when_the_database_is_down(settings: Settings) -> None:
    # A PostgreSQL control plane on a port where nothing listens: the process starts (the
    # engine connects lazily) but is not ready.
    down = settings.model_copy(update={"database_url": "postgresql://postgres@127.0.0.1:1/x"})
    with TestClient(create_app(down)) as client:
        response = client.get("/health/ready")
        assert client.get("/health").status_code == 200
    assert response.status_code == 503
    details = {d["name"]: d for d in response.json()["error"]["details"]}
    assert details["database"]["status"] == "down"
    assert details["database"]["backend"] == "postgresql"
    assert details["database"]["error"]
    assert details["event_store"]["status"] == "ok"


def test_metrics_are_prometheus_text(client: TestClient) -> None:
    client.get("/health")
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert 'sextant_http_requests_total{method="GET",route="/health",status="200"}' in response.text
    assert "sextant_http_request_duration_seconds_bucket" in response.text


def test_request_id_is_honoured_or_made(client: TestClient) -> None:
    given = client.get("/health", headers={"X-Request-ID": "abc-123"})
    assert given.headers["X-Request-ID"] == "abc-123"
    made = client.get("/health")
    assert len(made.headers["X-Request-ID"]) == 32
    assert made.headers["X-Request-ID"] != client.get("/health").headers["X-Request-ID"]


def test_errors_share_one_shape(client: TestClient) -> None:
    missing = client.get("/api/v1/no-such-endpoint")
    assert missing.status_code == 404
    assert set(missing.json()["error"]) == {"code", "message", "details"}
    wrong_method = client.put("/health")
    assert wrong_method.status_code == 405
    assert wrong_method.json()["error"]["code"] == "method_not_allowed"
