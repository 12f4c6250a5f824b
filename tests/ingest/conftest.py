"""Helpers for the ingestion tests: read back what the pipeline stored (with FINAL)."""

from __future__ import annotations

import secrets
from typing import Any

import pytest
from fastapi import FastAPI

from sextant.core.eventstore import EventStore


class Stored:
    """Reads a project's rows back from the shared chDB store, as analytics does (FINAL)."""

    def __init__(self, store: EventStore) -> None:
        self.store = store

    def events(self, project_id: str, where: str = "1", **params: Any) -> list[dict[str, Any]]:
        return self.store.query(
            f"SELECT * FROM events FINAL WHERE project_id = {{project_id:UUID}} AND ({where}) "
            "ORDER BY timestamp, message_id",
            {"project_id": project_id, **params},
        ).dicts()

    def count(self, project_id: str, where: str = "1", *, final: bool = True, **params: Any) -> int:
        return int(
            self.store.query(
                f"SELECT count() FROM events {'FINAL' if final else ''} "
                f"WHERE project_id = {{project_id:UUID}} AND ({where})",
                {"project_id": project_id, **params},
            ).scalar()
        )

    def aliases(self, project_id: str) -> dict[str, str]:
        rows = self.store.query(
            "SELECT distinct_id, person_id FROM person_aliases FINAL "
            "WHERE project_id = {project_id:UUID}",
            {"project_id": project_id},
        ).rows
        return {r[0]: r[1] for r in rows}


@pytest.fixture
def stored(app: FastAPI, client: Any) -> Stored:
    return Stored(app.state.events)


def _bootstrap(client: Any, timezone: str = "UTC") -> dict[str, Any]:
    """A user, org, project and write + read keys on `client`'s own control plane."""
    email = f"ingest-{secrets.token_hex(6)}@example.com"
    password = "correct-horse-7"
    registered = client.post(
        "/api/v1/auth/register", json={"email": email, "password": password, "name": "I"}
    )
    assert registered.status_code == 201, registered.text
    token = client.post("/api/v1/auth/login", json={"email": email, "password": password}).json()
    headers = {"Authorization": f"Bearer {token['access_token']}"}
    org = client.post("/api/v1/orgs", json={"name": "Ingest"}, headers=headers).json()
    project = client.post(
        "/api/v1/projects",
        json={"org_id": org["id"], "name": "Ingest", "timezone": timezone},
        headers=headers,
    ).json()
    keys = {}
    for kind in ("write", "read"):
        created = client.post(
            f"/api/v1/projects/{project['id']}/keys",
            json={"name": kind, "kind": kind},
            headers=headers,
        )
        assert created.status_code == 201, created.text
        keys[kind] = created.json()["secret"]
    return {
        "project_id": project["id"],
        "write_key": keys["write"],
        "read_key": keys["read"],
        "headers": headers,
    }


@pytest.fixture
def bootstrap() -> Any:
    return _bootstrap
