"""`sextant user create` and `sextant key create` against a real database."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from sextant.cli.main import app as cli
from sextant.config import get_settings
from sextant.projects.models import KeyKind

runner = CliRunner()


@pytest.fixture
def shell(make_client: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    """A server plus a shell whose `SEXTANT_*` settings point at the same database."""
    server = make_client(registration_enabled=False)
    settings = server.app.state.settings  # type: ignore[attr-defined]
    monkeypatch.setenv("SEXTANT_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("SEXTANT_ENVIRONMENT", "test")
    monkeypatch.setenv("SEXTANT_SECRET_KEY", settings.secret_key.get_secret_value())
    monkeypatch.setenv("SEXTANT_PASSWORD_HASH_TIME_COST", "1")
    monkeypatch.setenv("SEXTANT_PASSWORD_HASH_MEMORY_KIB", "1024")
    monkeypatch.delenv("SEXTANT_PASSWORD", raising=False)
    get_settings.cache_clear()
    yield server
    get_settings.cache_clear()


def test_user_create_admin_then_sign_in(shell: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEXTANT_PASSWORD", "root-password-1")
    result = runner.invoke(
        cli, ["user", "create", "--email", "Root@Example.com", "--name", "Root", "--admin"]
    )
    assert result.exit_code == 0, result.output
    user_id = result.stdout.strip()
    assert len(user_id) == 36
    login = shell.post(
        "/api/v1/auth/login", json={"email": "root@example.com", "password": "root-password-1"}
    )
    assert login.status_code == 200
    me = shell.get(
        "/api/v1/auth/me", headers={"Authorization": f"Bearer {login.json()['access_token']}"}
    ).json()
    assert (me["id"], me["is_admin"]) == (user_id, True)

    again = runner.invoke(cli, ["user", "create", "--email", "root@example.com", "--name", "Root"])
    assert again.exit_code == 1
    assert "already exists" in again.stderr


def test_user_create_without_a_password_fails_clearly(shell: TestClient) -> None:
    # CliRunner's stdin is not a terminal, so there is nobody to prompt.
    result = runner.invoke(cli, ["user", "create", "--email", "a@example.com", "--name", "A"])
    assert result.exit_code == 2
    assert "SEXTANT_PASSWORD" in result.stderr


def test_user_create_checks_the_password_and_email(shell: TestClient) -> None:
    weak = runner.invoke(
        cli, ["user", "create", "--email", "a@example.com", "--name", "A", "--password", "short"]
    )
    assert weak.exit_code == 2
    assert "at least 10 characters" in weak.stderr
    bad = runner.invoke(
        cli, ["user", "create", "--email", "nope", "--name", "A", "--password", "long-enough-1"]
    )
    assert bad.exit_code == 2
    assert "email" in bad.stderr


def test_key_create_prints_a_working_secret(
    shell: TestClient, make_user: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sextant.accounts import service

    settings = shell.app.state.settings  # type: ignore[attr-defined]
    with shell.app.state.db.session() as session:  # type: ignore[attr-defined]
        service.create_user(
            session, settings=settings, email="o@example.com", password="owner-pass-1", name="O"
        )
    token = shell.post(
        "/api/v1/auth/login", json={"email": "o@example.com", "password": "owner-pass-1"}
    ).json()["access_token"]
    h = {"Authorization": f"Bearer {token}"}
    org = shell.post("/api/v1/orgs", json={"name": "O"}, headers=h).json()
    project = shell.post(
        "/api/v1/projects", json={"org_id": org["id"], "name": "P"}, headers=h
    ).json()

    result = runner.invoke(
        cli,
        [
            "key",
            "create",
            "--project",
            project["id"],
            "--kind",
            "write",
            "--name",
            "web",
            "--expires-days",
            "30",
        ],
    )
    assert result.exit_code == 0, result.output
    secret = result.stdout.strip()
    assert secret.startswith("sx_w_")
    resolver = shell.app.state.key_resolver  # type: ignore[attr-defined]
    assert resolver.resolve(secret, KeyKind.WRITE).project_id == project["id"]
    keys = shell.get(f"/api/v1/projects/{project['id']}/keys", headers=h).json()
    assert [(k["name"], k["kind"], k["expires_at"] is not None) for k in keys] == [
        ("web", "write", True)
    ]

    missing = runner.invoke(
        cli, ["key", "create", "--project", "nope", "--kind", "read", "--name", "x"]
    )
    assert missing.exit_code == 1
    assert "project not found" in missing.stderr
    wrong_kind = runner.invoke(
        cli, ["key", "create", "--project", project["id"], "--kind", "admin", "--name", "x"]
    )
    assert wrong_kind.exit_code == 2
