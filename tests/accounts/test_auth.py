"""Sign-up, sign-in, tokens, sessions and passwords, through the HTTP API."""

from __future__ import annotations

import secrets
import time
from typing import Any

import jwt
import pytest
from fastapi.testclient import TestClient

TEST_PASSWORD = "correct-horse-7"


@pytest.fixture
def secret(settings: Any) -> str:
    return str(settings.secret_key.get_secret_value())


def _email() -> str:
    return f"user-{secrets.token_hex(6)}@example.com"


def _error(response: Any) -> dict[str, Any]:
    body = response.json()
    assert set(body) == {"error"}, body
    return dict(body["error"])


# --- register --------------------------------------------------------------------------------


def test_register_normalises_email_and_hides_the_password(client: TestClient) -> None:
    local = f"Mixed.Case-{secrets.token_hex(4)}"
    response = client.post(
        "/api/v1/auth/register",
        json={"email": f"  {local}@Example.COM ", "password": TEST_PASSWORD, "name": " Ada "},
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["email"] == f"{local.lower()}@example.com"
    assert body["name"] == "Ada"
    assert body["is_active"] is True
    assert body["is_admin"] is False
    assert "password" not in response.text
    assert "password_hash" not in body
    # The normalised address signs in whatever its case.
    login = client.post(
        "/api/v1/auth/login",
        json={"email": f"{local.upper()}@EXAMPLE.com", "password": TEST_PASSWORD},
    )
    assert login.status_code == 200, login.text


def test_register_twice_is_a_conflict(client: TestClient) -> None:
    email = _email()
    body = {"email": email, "password": TEST_PASSWORD, "name": "A"}
    assert client.post("/api/v1/auth/register", json=body).status_code == 201
    again = client.post("/api/v1/auth/register", json={**body, "email": email.upper()})
    assert again.status_code == 409
    assert _error(again)["code"] == "email_taken"


@pytest.mark.parametrize(
    ("password", "message"),
    [
        ("short-1", "at least 10 characters"),
        ("onlyletterslong", "one letter and one non-letter"),
        ("1234567890123", "one letter and one non-letter"),
        ("x1" * 65, "at most 128 characters"),
        ("          ", "only spaces"),
    ],
)
def test_register_password_rules_name_the_field(
    client: TestClient, password: str, message: str
) -> None:
    response = client.post(
        "/api/v1/auth/register", json={"email": _email(), "password": password, "name": "A"}
    )
    assert response.status_code == 422
    error = _error(response)
    assert error["code"] == "validation_error"
    assert error["details"][0]["field"] == "body.password"
    assert message in error["message"]


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"email": "not-an-email", "password": TEST_PASSWORD, "name": "A"}, "body.email"),
        ({"email": "a@example.com", "password": TEST_PASSWORD, "name": ""}, "body.name"),
        ({"email": "a@example.com", "password": TEST_PASSWORD, "name": "n" * 201}, "body.name"),
        ({"email": "a@example.com", "password": TEST_PASSWORD, "name": 42}, "body.name"),
        ({"email": "a@example.com", "password": TEST_PASSWORD}, "body.name"),
        ({"email": ["a@example.com"], "password": TEST_PASSWORD, "name": "A"}, "body.email"),
        (
            {"email": "a@example.com", "password": TEST_PASSWORD, "name": "A", "is_admin": True},
            "body.is_admin",
        ),
    ],
)
def test_register_bad_input_is_a_clear_422(
    client: TestClient, payload: dict[str, Any], field: str
) -> None:
    response = client.post("/api/v1/auth/register", json=payload)
    assert response.status_code == 422, response.text
    assert field in [d["field"] for d in _error(response)["details"]]


def test_malformed_json_is_a_4xx_not_a_500(client: TestClient) -> None:
    response = client.post(
        "/api/v1/auth/register",
        content=b'{"email": "a@example.com", "password": ',
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 422
    assert "JSON" in _error(response)["message"]
    not_an_object = client.post("/api/v1/auth/login", json=["a", "b"])
    assert not_an_object.status_code == 422


def test_register_disabled_refuses_sign_up(make_client: Any) -> None:
    closed = make_client(registration_enabled=False)
    response = closed.post(
        "/api/v1/auth/register", json={"email": _email(), "password": TEST_PASSWORD, "name": "A"}
    )
    assert response.status_code == 403
    assert _error(response)["code"] == "registration_disabled"


# --- login -----------------------------------------------------------------------------------


def test_login_returns_a_token_pair(client: TestClient, auth: dict[str, Any], secret: str) -> None:
    response = client.post(
        "/api/v1/auth/login", json={"email": auth["email"], "password": auth["password"]}
    )
    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 900
    claims = jwt.decode(body["access_token"], secret, algorithms=["HS256"], issuer="sextant")
    assert claims["sub"] == auth["user_id"]
    assert claims["exp"] - claims["iat"] == 900
    assert body["refresh_token"] != auth["refresh_token"]


def test_login_failures_do_not_say_which_part_was_wrong(
    client: TestClient, auth: dict[str, Any]
) -> None:
    wrong_password = client.post(
        "/api/v1/auth/login", json={"email": auth["email"], "password": "wrong-password-1"}
    )
    unknown_user = client.post(
        "/api/v1/auth/login", json={"email": _email(), "password": auth["password"]}
    )
    assert wrong_password.status_code == unknown_user.status_code == 401
    assert _error(wrong_password) == _error(unknown_user)
    assert _error(wrong_password)["code"] == "invalid_credentials"


def test_login_requires_both_fields(client: TestClient) -> None:
    response = client.post("/api/v1/auth/login", json={"email": "a@example.com"})
    assert response.status_code == 422
    assert _error(response)["details"][0]["field"] == "body.password"


def test_oauth2_password_form_signs_in(client: TestClient, auth: dict[str, Any]) -> None:
    response = client.post(
        "/api/v1/auth/token", data={"username": auth["email"], "password": auth["password"]}
    )
    assert response.status_code == 200, response.text
    token = response.json()["access_token"]
    me = client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"})
    assert me.json()["id"] == auth["user_id"]
    bad = client.post(
        "/api/v1/auth/token", data={"username": auth["email"], "password": "nope-nope-1"}
    )
    assert bad.status_code == 401
    missing = client.post("/api/v1/auth/token", data={"username": auth["email"]})
    assert missing.status_code == 422


def test_openapi_documents_the_password_flow(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    flows = spec["components"]["securitySchemes"]["OAuth2PasswordBearer"]["flows"]
    assert flows["password"]["tokenUrl"] == "/api/v1/auth/token"
    # Error answers are documented with the one error shape.
    assert "ErrorResponse" in spec["components"]["schemas"]
    refresh = spec["paths"]["/api/v1/auth/refresh"]["post"]["responses"]
    assert refresh["401"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/ErrorResponse"
    )
    keys = spec["paths"]["/api/v1/projects/{project_id}/keys"]["post"]
    assert keys["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/ApiKeyCreate"
    )
    assert keys["responses"]["201"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/ApiKeyWithSecret"
    )
    assert client.get("/docs").status_code == 200
    assert client.get("/redoc").status_code == 200


# --- me --------------------------------------------------------------------------------------


def test_me_lists_my_organisations(
    client: TestClient, auth: dict[str, Any], org: dict[str, Any]
) -> None:
    response = client.get("/api/v1/auth/me", headers=auth["headers"])
    assert response.status_code == 200
    body = response.json()
    assert body["id"] == auth["user_id"]
    assert body["orgs"] == [{"org_id": org["id"], "org_name": org["name"], "role": "owner"}]


def test_me_can_change_my_name(client: TestClient, auth: dict[str, Any]) -> None:
    response = client.patch("/api/v1/auth/me", json={"name": "Grace"}, headers=auth["headers"])
    assert response.status_code == 200
    assert client.get("/api/v1/auth/me", headers=auth["headers"]).json()["name"] == "Grace"
    too_long = client.patch("/api/v1/auth/me", json={"name": "x" * 300}, headers=auth["headers"])
    assert too_long.status_code == 422


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ({}, "sign in required"),
        ({"Authorization": "Bearer not.a.jwt"}, "invalid access token"),
        ({"Authorization": "Basic dXNlcjpwYXNz"}, "sign in required"),
        ({"Authorization": "Bearer sx_r_" + "a" * 40}, "API keys cannot be used here"),
    ],
)
def test_me_rejects_missing_or_bad_tokens(
    client: TestClient, headers: dict[str, str], message: str
) -> None:
    response = client.get("/api/v1/auth/me", headers=headers)
    assert response.status_code == 401
    assert message in _error(response)["message"]
    assert response.headers["WWW-Authenticate"] == "Bearer"


def _forge(claims: dict[str, Any], secret: str) -> dict[str, str]:
    now = int(time.time())
    payload = {"iss": "sextant", "typ": "access", "iat": now, "exp": now + 60, **claims}
    return {"Authorization": f"Bearer {jwt.encode(payload, secret, algorithm='HS256')}"}


def test_me_rejects_expired_forged_and_refresh_typed_tokens(
    client: TestClient, auth: dict[str, Any], secret: str
) -> None:
    me = "/api/v1/auth/me"
    now = int(time.time())
    expired = client.get(me, headers=_forge({"sub": auth["user_id"], "exp": now - 10}, secret))
    assert expired.status_code == 401
    assert "expired" in _error(expired)["message"]
    forged = client.get(me, headers=_forge({"sub": auth["user_id"]}, "x" * 48))
    assert forged.status_code == 401
    wrong_type = client.get(me, headers=_forge({"sub": auth["user_id"], "typ": "refresh"}, secret))
    assert wrong_type.status_code == 401
    # A valid signature without the password version claim (or with a stale one) is refused.
    no_version = client.get(me, headers=_forge({"sub": auth["user_id"]}, secret))
    assert no_version.status_code == 401
    unknown_user = client.get(me, headers=_forge({"sub": "no-such-user"}, secret))
    assert unknown_user.status_code == 401


# --- refresh rotation, reuse detection, logout -----------------------------------------------


def _refresh(client: TestClient, token: str) -> Any:
    return client.post("/api/v1/auth/refresh", json={"refresh_token": token})


def test_refresh_rotates_the_token(client: TestClient, auth: dict[str, Any]) -> None:
    first = _refresh(client, auth["refresh_token"])
    assert first.status_code == 200, first.text
    pair = first.json()
    assert pair["refresh_token"] != auth["refresh_token"]
    me = client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {pair['access_token']}"})
    assert me.status_code == 200
    second = _refresh(client, pair["refresh_token"])
    assert second.status_code == 200


def test_reusing_a_rotated_refresh_token_revokes_the_whole_family(
    client: TestClient, auth: dict[str, Any]
) -> None:
    stolen = auth["refresh_token"]
    rotated = _refresh(client, stolen).json()["refresh_token"]
    # A different sign-in of the same user is another family and must survive.
    other_session = client.post(
        "/api/v1/auth/login", json={"email": auth["email"], "password": auth["password"]}
    ).json()["refresh_token"]

    reuse = _refresh(client, stolen)
    assert reuse.status_code == 401
    assert _error(reuse)["code"] == "refresh_token_reused"

    # The legitimate holder's newer token died with the family...
    after = _refresh(client, rotated)
    assert after.status_code == 401
    assert _error(after)["code"] == "refresh_token_revoked"
    # ...but the other session is untouched.
    assert _refresh(client, other_session).status_code == 200


def test_refresh_rejects_unknown_tokens(client: TestClient) -> None:
    response = _refresh(client, "definitely-not-a-token")
    assert response.status_code == 401
    assert _error(response)["code"] == "invalid_refresh_token"
    empty = _refresh(client, "")
    assert empty.status_code == 422


def test_refresh_rejects_expired_tokens(client: TestClient, auth: dict[str, Any]) -> None:
    from datetime import timedelta

    from sqlalchemy import update

    from sextant.accounts.models import RefreshToken
    from sextant.core.db import utcnow
    from sextant.core.security import hash_token

    with client.app.state.db.session() as session:  # type: ignore[attr-defined]
        session.execute(
            update(RefreshToken)
            .where(RefreshToken.token_hash == hash_token(auth["refresh_token"]))
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
        session.commit()
    response = _refresh(client, auth["refresh_token"])
    assert response.status_code == 401
    assert _error(response)["code"] == "refresh_token_expired"


def test_logout_revokes_the_session(client: TestClient, auth: dict[str, Any]) -> None:
    other = client.post(
        "/api/v1/auth/login", json={"email": auth["email"], "password": auth["password"]}
    ).json()["refresh_token"]
    response = client.post("/api/v1/auth/logout", json={"refresh_token": auth["refresh_token"]})
    assert response.status_code == 204
    assert _refresh(client, auth["refresh_token"]).status_code == 401
    assert _refresh(client, other).status_code == 200  # only that session ended
    # Logging out twice, or with a token we never issued, is harmless.
    again = client.post("/api/v1/auth/logout", json={"refresh_token": auth["refresh_token"]})
    assert again.status_code == 204
    unknown = client.post("/api/v1/auth/logout", json={"refresh_token": "nope"})
    assert unknown.status_code == 204


def test_logout_everywhere_ends_every_session(client: TestClient, auth: dict[str, Any]) -> None:
    other = client.post(
        "/api/v1/auth/login", json={"email": auth["email"], "password": auth["password"]}
    ).json()["refresh_token"]
    response = client.post(
        "/api/v1/auth/logout", json={"refresh_token": auth["refresh_token"], "everywhere": True}
    )
    assert response.status_code == 204
    assert _refresh(client, other).status_code == 401


# --- change password -------------------------------------------------------------------------


def test_change_password_ends_old_sessions_and_tokens(
    client: TestClient, auth: dict[str, Any]
) -> None:
    new_password = "another-secret-9"
    response = client.post(
        "/api/v1/auth/password",
        json={"current_password": auth["password"], "new_password": new_password},
        headers=auth["headers"],
    )
    assert response.status_code == 200, response.text
    fresh = response.json()
    # The old access token and refresh token stop working at once.
    assert client.get("/api/v1/auth/me", headers=auth["headers"]).status_code == 401
    assert _refresh(client, auth["refresh_token"]).status_code == 401
    # The new pair works, and only the new password signs in.
    headers = {"Authorization": f"Bearer {fresh['access_token']}"}
    assert client.get("/api/v1/auth/me", headers=headers).status_code == 200
    assert _refresh(client, fresh["refresh_token"]).status_code == 200
    old = client.post(
        "/api/v1/auth/login", json={"email": auth["email"], "password": auth["password"]}
    )
    assert old.status_code == 401
    new = client.post("/api/v1/auth/login", json={"email": auth["email"], "password": new_password})
    assert new.status_code == 200


def test_change_password_failures(client: TestClient, auth: dict[str, Any]) -> None:
    url = "/api/v1/auth/password"
    wrong = client.post(
        url,
        json={"current_password": "not-my-password-1", "new_password": "another-secret-9"},
        headers=auth["headers"],
    )
    assert wrong.status_code == 400
    assert _error(wrong)["code"] == "invalid_password"
    same = client.post(
        url,
        json={"current_password": auth["password"], "new_password": auth["password"]},
        headers=auth["headers"],
    )
    assert same.status_code == 400
    assert _error(same)["code"] == "password_unchanged"
    weak = client.post(
        url,
        json={"current_password": auth["password"], "new_password": "weak"},
        headers=auth["headers"],
    )
    assert weak.status_code == 422
    assert _error(weak)["details"][0]["field"] == "body.new_password"
    anonymous = client.post(
        url, json={"current_password": auth["password"], "new_password": "another-secret-9"}
    )
    assert anonymous.status_code == 401
    # Nothing changed.
    assert client.get("/api/v1/auth/me", headers=auth["headers"]).status_code == 200


# --- throttling ------------------------------------------------------------------------------


def _login(client: TestClient, email: str, password: str, ip: str | None = None) -> Any:
    headers = {"X-Forwarded-For": ip} if ip else {}
    return client.post(
        "/api/v1/auth/login", json={"email": email, "password": password}, headers=headers
    )


def test_repeated_failures_lock_the_account_with_retry_after(
    make_client: Any, make_user: Any
) -> None:
    limited = make_client(login_max_failures=3, login_window_seconds=600)
    user = make_user(on=limited)
    for _ in range(3):
        assert _login(limited, user["email"], "wrong-password-1").status_code == 401
    # Now even the right password is refused until the window passes.
    locked = _login(limited, user["email"], user["password"])
    assert locked.status_code == 429
    assert 1 <= int(locked.headers["Retry-After"]) <= 600
    assert _error(locked)["code"] == "login_throttled"
    assert "this account" in _error(locked)["message"]
    # The OAuth2 form and password change are throttled by the same counter.
    form = limited.post(
        "/api/v1/auth/token", data={"username": user["email"], "password": user["password"]}
    )
    assert form.status_code == 429
    # Other accounts are unaffected.
    other = make_user(on=limited)
    assert _login(limited, other["email"], other["password"]).status_code == 200


def test_repeated_failures_from_one_address_are_throttled(make_client: Any, make_user: Any) -> None:
    limited = make_client(
        login_max_failures=100,
        login_max_failures_per_ip=4,
        login_window_seconds=600,
        trusted_proxies=["testclient", "127.0.0.1"],
    )
    victim = make_user(on=limited)
    attacker_ip, office_ip = "203.0.113.9", "198.51.100.7"
    for _ in range(4):
        assert _login(limited, _email(), "guess-password-1", ip=attacker_ip).status_code == 401
    blocked = _login(limited, victim["email"], victim["password"], ip=attacker_ip)
    assert blocked.status_code == 429
    assert "your address" in _error(blocked)["message"]
    assert int(blocked.headers["Retry-After"]) >= 1
    # The same account from another address still signs in...
    assert _login(limited, victim["email"], victim["password"], ip=office_ip).status_code == 200
    # ...and that success does not clear the attacker's counter.
    again = _login(limited, victim["email"], victim["password"], ip=attacker_ip)
    assert again.status_code == 429


def test_success_does_not_reset_the_account_counter(make_client: Any, make_user: Any) -> None:
    limited = make_client(login_max_failures=3, login_window_seconds=600)
    user = make_user(on=limited)
    assert _login(limited, user["email"], "wrong-password-1").status_code == 401
    assert _login(limited, user["email"], "wrong-password-1").status_code == 401
    assert _login(limited, user["email"], user["password"]).status_code == 200
    assert _login(limited, user["email"], "wrong-password-1").status_code == 401
    assert _login(limited, user["email"], user["password"]).status_code == 429


def test_forwarded_for_is_ignored_from_untrusted_peers(make_client: Any) -> None:
    limited = make_client(login_max_failures=100, login_max_failures_per_ip=2)
    for ip in ("203.0.113.1", "203.0.113.2"):
        assert _login(limited, _email(), "guess-password-1", ip=ip).status_code == 401
    # Both failures counted against the real peer, so spoofing a header does not help.
    assert _login(limited, _email(), "guess-password-1", ip="203.0.113.3").status_code == 429
