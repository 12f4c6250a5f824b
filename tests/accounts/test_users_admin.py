"""Platform administrators: creating users when sign-up is closed, (de)activating accounts."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update

from sextant.accounts.models import User

PASSWORD = "admin-secret-42"


def _make_admin(client: TestClient, user_id: str) -> None:
    with client.app.state.db.session() as session:  # type: ignore[attr-defined]
        session.execute(update(User).where(User.id == user_id).values(is_admin=True))
        session.commit()


@pytest.fixture
def admin(client: TestClient, make_user: Any) -> dict[str, Any]:
    user = make_user(name="Admin")
    _make_admin(client, user["user_id"])
    return dict(user)


def _login(client: TestClient, email: str, password: str) -> Any:
    return client.post("/api/v1/auth/login", json={"email": email, "password": password})


def test_non_admins_cannot_manage_users(client: TestClient, auth: dict[str, Any]) -> None:
    h = auth["headers"]
    body = {"email": "someone@example.com", "password": PASSWORD, "name": "S"}
    for response in (
        client.post("/api/v1/users", json=body, headers=h),
        client.get("/api/v1/users", headers=h),
        client.patch(f"/api/v1/users/{auth['user_id']}", json={"is_admin": True}, headers=h),
    ):
        assert response.status_code == 403
        assert response.json()["error"]["code"] == "admin_required"
    assert client.get("/api/v1/users").status_code == 401


def test_admin_creates_users_when_registration_is_closed(make_client: Any) -> None:
    from sextant.accounts import service

    closed = make_client(registration_enabled=False)
    settings = closed.app.state.settings  # type: ignore[attr-defined]
    # The first admin comes from the shell (`sextant user create --admin`).
    with closed.app.state.db.session() as session:  # type: ignore[attr-defined]
        service.create_user(
            session,
            settings=settings,
            email="root@example.com",
            password=PASSWORD,
            name="Root",
            is_admin=True,
        )
    token = _login(closed, "root@example.com", PASSWORD).json()["access_token"]
    h = {"Authorization": f"Bearer {token}"}
    created = closed.post(
        "/api/v1/users",
        json={"email": "New@Example.com", "password": "new-user-pw-1", "name": "New"},
        headers=h,
    )
    assert created.status_code == 201, created.text
    assert created.json()["email"] == "new@example.com"
    assert created.json()["is_admin"] is False
    assert _login(closed, "new@example.com", "new-user-pw-1").status_code == 200
    dup = closed.post(
        "/api/v1/users",
        json={"email": "new@example.com", "password": "new-user-pw-1", "name": "New"},
        headers=h,
    )
    assert dup.status_code == 409
    weak = closed.post(
        "/api/v1/users", json={"email": "w@example.com", "password": "x", "name": "W"}, headers=h
    )
    assert weak.status_code == 422
    listed = closed.get("/api/v1/users", params={"limit": 1, "offset": 1}, headers=h).json()
    assert [u["email"] for u in listed] == ["new@example.com"]
    assert closed.get("/api/v1/users", params={"limit": 0}, headers=h).status_code == 422


def test_deactivated_users_are_locked_out(
    client: TestClient, admin: dict[str, Any], auth: dict[str, Any]
) -> None:
    url = f"/api/v1/users/{auth['user_id']}"
    off = client.patch(url, json={"is_active": False}, headers=admin["headers"])
    assert off.status_code == 200
    assert off.json()["is_active"] is False
    # Right password, but the account is inactive: 403, and existing tokens stop working.
    login = _login(client, auth["email"], auth["password"])
    assert login.status_code == 403
    assert login.json()["error"]["code"] == "account_inactive"
    assert client.get("/api/v1/auth/me", headers=auth["headers"]).status_code == 403
    refresh = client.post("/api/v1/auth/refresh", json={"refresh_token": auth["refresh_token"]})
    assert refresh.status_code == 401  # deactivation revoked the sessions
    # A wrong password still says only "incorrect", revealing nothing about the account.
    assert _login(client, auth["email"], "wrong-password-1").status_code == 401

    on = client.patch(url, json={"is_active": True}, headers=admin["headers"])
    assert on.json()["is_active"] is True
    assert _login(client, auth["email"], auth["password"]).status_code == 200


def test_admins_can_promote_but_not_demote_themselves(
    client: TestClient, admin: dict[str, Any], auth: dict[str, Any]
) -> None:
    promoted = client.patch(
        f"/api/v1/users/{auth['user_id']}", json={"is_admin": True}, headers=admin["headers"]
    )
    assert promoted.json()["is_admin"] is True
    me = client.get("/api/v1/auth/me", headers=auth["headers"]).json()
    assert me["is_admin"] is True
    self_url = f"/api/v1/users/{admin['user_id']}"
    for body in ({"is_admin": False}, {"is_active": False}):
        response = client.patch(self_url, json=body, headers=admin["headers"])
        assert response.status_code == 409
    missing = client.patch("/api/v1/users/nope", json={"name": "x"}, headers=admin["headers"])
    assert missing.status_code == 404
