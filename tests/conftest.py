"""Shared fixtures: real stores (SQLite control plane, chDB event store) in a temp dir.

chDB runs one engine per process, so the whole test session shares one event store;
tests isolate themselves by creating their own projects (the sort key starts with the
project, and every query filters on it, so tenants never see each other's rows).
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from sextant.analytics.rollups import RollupScheduler
from sextant.app import create_app
from sextant.config import Environment, Settings
from sextant.migrations import control

TEST_SECRET = secrets.token_urlsafe(48)


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("sextant-data")


@pytest.fixture(scope="session")
def events_url(data_dir: Path) -> str:
    return f"chdb://{data_dir / 'events'}"


def make_settings(
    data_dir: Path, events_url: str, name: str = "sextant", **overrides: Any
) -> Settings:
    values: dict[str, Any] = {
        "environment": Environment.TEST,
        "secret_key": TEST_SECRET,
        "database_url": f"sqlite:///{data_dir / (name + '.db')}",
        "events_url": events_url,
        "log_json": False,
        "log_level": "WARNING",
        "ingest_flush_interval_ms": 20,
        # Normalising workers only where a test asks for them (tests/ingest/test_pool.py).
        "ingest_workers": 0,
        "retention_check_interval_seconds": 0,
        # Cheap Argon2 in tests (production keeps the library's strong defaults).
        "password_hash_time_cost": 1,
        "password_hash_memory_kib": 1024,
        # The shared client signs in from one address; lockout tests use their own app.
        "login_max_failures_per_ip": 100_000,
        # The free-space guard stays on, with a floor a small test machine's disk can keep
        # (tests/ingest/test_full_disk.py runs it into a full disk on purpose).
        "ingest_min_free_disk_mb": 16,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@pytest.fixture(scope="session")
def settings(data_dir: Path, events_url: str) -> Settings:
    return make_settings(data_dir, events_url)


@pytest.fixture(scope="session")
def app(settings: Settings) -> FastAPI:
    control.upgrade(settings.database_url)
    return create_app(settings)


@pytest.fixture(scope="session")
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app) as test_client:
        yield test_client


@pytest.fixture
def make_client(data_dir: Path, events_url: str) -> Iterator[Any]:
    """Build a client for an app with its own control-plane DB and setting overrides."""
    opened: list[TestClient] = []

    def factory(**overrides: Any) -> TestClient:
        name = f"sextant-{secrets.token_hex(4)}"
        cfg = make_settings(data_dir, events_url, name=name, **overrides)
        control.upgrade(cfg.database_url)
        test_client = TestClient(create_app(cfg))
        test_client.__enter__()
        opened.append(test_client)
        return test_client

    yield factory
    for test_client in opened:
        test_client.__exit__(None, None, None)


# --- accounts, organisations, projects and keys (through the public API) ---------------------

TEST_PASSWORD = "correct-horse-7"


def register_user(
    client: TestClient,
    *,
    email: str | None = None,
    name: str = "Test User",
    password: str = TEST_PASSWORD,
) -> dict[str, Any]:
    """Sign up and sign in; returns `headers`, `email`, `user_id`, `password` and the tokens."""
    email = email or f"user-{secrets.token_hex(6)}@example.com"
    response = client.post(
        "/api/v1/auth/register", json={"email": email, "password": password, "name": name}
    )
    assert response.status_code == 201, response.text
    user = response.json()
    tokens = client.post("/api/v1/auth/login", json={"email": email, "password": password})
    assert tokens.status_code == 200, tokens.text
    pair = tokens.json()
    return {
        "headers": {"Authorization": f"Bearer {pair['access_token']}"},
        "email": user["email"],
        "user_id": user["id"],
        "password": password,
        "access_token": pair["access_token"],
        "refresh_token": pair["refresh_token"],
    }


@pytest.fixture
def make_user(client: TestClient) -> Any:
    """Factory: `make_user(email=None, name=..., on=other_client)` registers and signs in
    another user (on the shared client unless `on` is given)."""

    def factory(on: TestClient | None = None, **kwargs: Any) -> dict[str, Any]:
        return register_user(on or client, **kwargs)

    return factory


@pytest.fixture
def auth(client: TestClient) -> dict[str, Any]:
    """A freshly registered, signed-in user."""
    return register_user(client)


@pytest.fixture
def org(client: TestClient, auth: dict[str, Any]) -> dict[str, Any]:
    """An organisation owned by `auth`."""
    response = client.post("/api/v1/orgs", json={"name": "Acme Analytics"}, headers=auth["headers"])
    assert response.status_code == 201, response.text
    return dict(response.json())


@pytest.fixture
def project(client: TestClient, auth: dict[str, Any], org: dict[str, Any]) -> dict[str, Any]:
    """A project (time zone UTC) in `org`."""
    response = client.post(
        "/api/v1/projects",
        json={"org_id": org["id"], "name": "Web shop", "timezone": "UTC"},
        headers=auth["headers"],
    )
    assert response.status_code == 201, response.text
    return dict(response.json())


def create_key(
    client: TestClient, auth: dict[str, Any], project: dict[str, Any], kind: str
) -> dict[str, Any]:
    response = client.post(
        f"/api/v1/projects/{project['id']}/keys",
        json={"name": f"{kind} key", "kind": kind},
        headers=auth["headers"],
    )
    assert response.status_code == 201, response.text
    return dict(response.json())


@pytest.fixture
def write_key(client: TestClient, auth: dict[str, Any], project: dict[str, Any]) -> str:
    """The secret of a write key (`sx_w_...`) for `project`."""
    return str(create_key(client, auth, project, "write")["secret"])


@pytest.fixture
def read_key(client: TestClient, auth: dict[str, Any], project: dict[str, Any]) -> str:
    """The secret of a read key (`sx_r_...`) for `project`."""
    return str(create_key(client, auth, project, "read")["secret"])


@pytest.fixture
def no_background_builds(app: FastAPI, client: TestClient) -> Iterator[None]:
    """The app shares the event store: its background rollup builds (of projects that
    earlier tests asked about) write, and read links, at any moment. Tests that count the
    store's writes or reads pause them."""
    scheduler: RollupScheduler | None = app.state.rollups
    if scheduler is None:
        yield
        return
    scheduler.stop()
    try:
        yield
    finally:
        scheduler.start()
