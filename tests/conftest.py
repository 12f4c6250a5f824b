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
