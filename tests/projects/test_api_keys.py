"""API keys: issue, list, revoke, rotate, expiry; the resolver and the read dependency."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event, inspect, select, update

from sextant.core.errors import Unauthorized
from sextant.core.security import hash_token
from sextant.projects.context import ProjectContext
from sextant.projects.dependencies import KeyResolver, ProjectReadDep
from sextant.projects.models import ApiKey, KeyKind

WHOAMI = "/_test/projects/{project_id}/whoami"


def _error(response: Any) -> dict[str, Any]:
    return dict(response.json()["error"])


@pytest.fixture(scope="module", autouse=True)
def whoami_route(app: Any) -> None:
    """A read route guarded by `ProjectReadDep`, as the analytics endpoints are."""
    if any(getattr(r, "path", "") == WHOAMI for r in app.routes):
        return

    def whoami(project_id: str, ctx: ProjectReadDep) -> dict[str, Any]:
        assert isinstance(ctx, ProjectContext)
        return {"project_id": ctx.project_id, "role": ctx.role, "key_id": ctx.key_id}

    app.add_api_route(WHOAMI, whoami, methods=["GET"], include_in_schema=False)


def _keys_url(project: dict[str, Any]) -> str:
    return f"/api/v1/projects/{project['id']}/keys"


def _create(client: TestClient, auth: dict[str, Any], project: dict[str, Any], **body: Any) -> Any:
    return client.post(_keys_url(project), json=body, headers=auth["headers"])


def _resolver(client: TestClient) -> KeyResolver:
    resolver: KeyResolver = client.app.state.key_resolver  # type: ignore[attr-defined]
    return resolver


def _expire(client: TestClient, key_id: str) -> None:
    with client.app.state.db.session() as session:  # type: ignore[attr-defined]
        session.execute(
            update(ApiKey)
            .where(ApiKey.id == key_id)
            .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
        session.commit()
    _resolver(client).clear()


# --- issue and list --------------------------------------------------------------------------


def test_create_returns_the_secret_once_and_stores_only_a_hash(
    client: TestClient, auth: dict[str, Any], project: dict[str, Any]
) -> None:
    response = _create(client, auth, project, name="website", kind="write")
    assert response.status_code == 201, response.text
    key = response.json()
    secret = key["secret"]
    assert secret.startswith("sx_w_")
    assert len(secret) == 45
    assert secret[5:].isalnum()
    assert secret.startswith(key["prefix"])
    assert len(key["prefix"]) == 17
    assert key["kind"] == "write"
    assert key["status"] == "active"
    assert key["project_id"] == project["id"]

    read = _create(client, auth, project, name="reports", kind="read").json()
    assert read["secret"].startswith("sx_r_")

    listed = client.get(_keys_url(project), headers=auth["headers"])
    assert listed.status_code == 200
    assert [k["name"] for k in listed.json()] == ["website", "reports"]
    assert secret not in listed.text
    assert all("secret" not in k for k in listed.json())
    one = client.get(f"{_keys_url(project)}/{key['id']}", headers=auth["headers"])
    assert secret not in one.text

    with client.app.state.db.session() as session:  # type: ignore[attr-defined]
        row = session.scalar(select(ApiKey).where(ApiKey.id == key["id"]))
        assert row is not None
        assert row.secret_hash == hash_token(secret)
        assert secret not in (row.prefix, row.secret_hash)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "k"}, "body.kind"),
        ({"name": "k", "kind": "admin"}, "body.kind"),
        ({"kind": "read"}, "body.name"),
        ({"name": "", "kind": "read"}, "body.name"),
        ({"name": "k" * 201, "kind": "read"}, "body.name"),
        ({"name": "k", "kind": "read", "expires_at": "next tuesday"}, "body.expires_at"),
        ({"name": "k", "kind": "read", "expires_at": "2001-01-01T00:00:00Z"}, "body.expires_at"),
        ({"name": "k", "kind": "read", "scopes": ["all"]}, "body.scopes"),
    ],
)
def test_bad_key_input_is_a_clear_422(
    client: TestClient,
    auth: dict[str, Any],
    project: dict[str, Any],
    body: dict[str, Any],
    field: str,
) -> None:
    response = _create(client, auth, project, **body)
    assert response.status_code == 422, response.text
    assert field in [d["field"] for d in _error(response)["details"]]


def test_keys_need_a_signed_in_user(
    client: TestClient, project: dict[str, Any], write_key: str
) -> None:
    assert client.get(_keys_url(project)).status_code == 401
    # An API key is not a user credential.
    as_key = client.get(_keys_url(project), headers={"Authorization": f"Bearer {write_key}"})
    assert as_key.status_code == 401


# --- the resolver ----------------------------------------------------------------------------


def test_resolver_maps_a_secret_to_its_project(
    client: TestClient, project: dict[str, Any], write_key: str, read_key: str
) -> None:
    resolver = _resolver(client)
    ctx = resolver.resolve(write_key, KeyKind.WRITE)
    assert ctx.project_id == project["id"]
    assert ctx.org_id == project["org_id"]
    assert ctx.timezone == "UTC"
    assert ctx.retention_days == 365
    assert ctx.key_id is not None
    assert resolver.resolve(read_key, KeyKind.READ).project_id == project["id"]


@pytest.mark.parametrize(
    "secret",
    [
        "",
        "sx_w_",
        "sk_live_abc",
        "sx_w_" + "A" * 40,  # well formed, never issued
        "sx_x_" + "A" * 40,
    ],
)
def test_resolver_rejects_unknown_secrets(client: TestClient, secret: str) -> None:
    with pytest.raises(Unauthorized, match="invalid API key"):
        _resolver(client).resolve(secret, KeyKind.WRITE)


def test_resolver_rejects_a_right_prefix_with_a_wrong_secret(
    client: TestClient, write_key: str
) -> None:
    tampered = write_key[:-1] + ("a" if write_key[-1] != "a" else "b")
    with pytest.raises(Unauthorized, match="invalid API key"):
        _resolver(client).resolve(tampered, KeyKind.WRITE)


def test_resolver_says_when_the_kind_is_wrong(
    client: TestClient, write_key: str, read_key: str
) -> None:
    with pytest.raises(Unauthorized, match="this is a read key") as exc:
        _resolver(client).resolve(read_key, KeyKind.WRITE)
    assert exc.value.code == "wrong_key_kind"
    with pytest.raises(Unauthorized, match="this is a write key"):
        _resolver(client).resolve(write_key, KeyKind.READ)


@pytest.fixture
def selects(client: TestClient) -> Iterator[list[str]]:
    """The SELECT statements the control-plane database runs while the fixture is active."""
    engine = client.app.state.db.engine  # type: ignore[attr-defined]
    seen: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            seen.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    yield seen
    event.remove(engine, "before_cursor_execute", record)


def test_resolver_uses_one_indexed_lookup_then_its_cache(
    client: TestClient, write_key: str, selects: list[str]
) -> None:
    resolver = _resolver(client)
    resolver.clear()
    selects.clear()
    resolver.resolve(write_key, KeyKind.WRITE)
    assert len(selects) == 1
    assert "api_keys.prefix = " in selects[0]
    for _ in range(50):
        resolver.resolve(write_key, KeyKind.WRITE)
    assert len(selects) == 1  # served from the cache

    indexes = inspect(client.app.state.db.engine).get_indexes("api_keys")  # type: ignore[attr-defined]
    prefix_index = next(i for i in indexes if i["column_names"] == ["prefix"])
    assert prefix_index["unique"]


def test_resolver_records_last_use(
    client: TestClient, auth: dict[str, Any], project: dict[str, Any], write_key: str
) -> None:
    before = client.get(_keys_url(project), headers=auth["headers"]).json()
    assert before[0]["last_used_at"] is None
    _resolver(client).resolve(write_key, KeyKind.WRITE)
    after = client.get(_keys_url(project), headers=auth["headers"]).json()
    assert after[0]["last_used_at"] is not None


def test_another_process_sees_a_revocation_when_its_cache_expires(
    client: TestClient, auth: dict[str, Any], project: dict[str, Any]
) -> None:
    key = _create(client, auth, project, name="k", kind="write").json()
    db = client.app.state.db  # type: ignore[attr-defined]
    other_process = KeyResolver(db, cache_seconds=0)
    assert other_process.resolve(key["secret"], KeyKind.WRITE).project_id == project["id"]
    client.post(f"{_keys_url(project)}/{key['id']}/revoke", headers=auth["headers"])
    with pytest.raises(Unauthorized, match="API key revoked"):
        other_process.resolve(key["secret"], KeyKind.WRITE)


# --- revoke, rotate, expire ------------------------------------------------------------------


def test_revoke_stops_the_key_at_once(
    client: TestClient, auth: dict[str, Any], project: dict[str, Any]
) -> None:
    key = _create(client, auth, project, name="k", kind="write").json()
    resolver = _resolver(client)
    resolver.resolve(key["secret"], KeyKind.WRITE)  # now cached
    revoked = client.post(f"{_keys_url(project)}/{key['id']}/revoke", headers=auth["headers"])
    assert revoked.status_code == 200
    assert revoked.json()["status"] == "revoked"
    assert revoked.json()["revoked_at"] is not None
    with pytest.raises(Unauthorized, match="API key revoked") as exc:
        resolver.resolve(key["secret"], KeyKind.WRITE)
    assert exc.value.code == "api_key_revoked"
    # Idempotent, keeps the first revocation time; the key stays listed for the record.
    again = client.post(f"{_keys_url(project)}/{key['id']}/revoke", headers=auth["headers"])
    assert again.json()["revoked_at"] == revoked.json()["revoked_at"]
    listed = client.get(_keys_url(project), headers=auth["headers"]).json()
    assert {k["id"]: k["status"] for k in listed}[key["id"]] == "revoked"
    # A revoked key cannot be rotated back to life.
    rotate = client.post(f"{_keys_url(project)}/{key['id']}/rotate", headers=auth["headers"])
    assert rotate.status_code == 409
    assert _error(rotate)["code"] == "key_revoked"


def test_rotate_replaces_the_secret(
    client: TestClient, auth: dict[str, Any], project: dict[str, Any]
) -> None:
    key = _create(client, auth, project, name="web", kind="write").json()
    resolver = _resolver(client)
    resolver.resolve(key["secret"], KeyKind.WRITE)  # now cached
    response = client.post(f"{_keys_url(project)}/{key['id']}/rotate", headers=auth["headers"])
    assert response.status_code == 200, response.text
    rotated = response.json()
    assert rotated["id"] == key["id"]
    assert rotated["name"] == "web"
    assert rotated["secret"] != key["secret"]
    assert rotated["prefix"] != key["prefix"]
    assert rotated["secret"].startswith("sx_w_")
    with pytest.raises(Unauthorized, match="invalid API key"):
        resolver.resolve(key["secret"], KeyKind.WRITE)
    assert resolver.resolve(rotated["secret"], KeyKind.WRITE).key_id == key["id"]


def test_expired_keys_are_refused_and_say_so(
    client: TestClient, auth: dict[str, Any], project: dict[str, Any]
) -> None:
    future = (datetime.now(UTC) + timedelta(days=30)).isoformat()
    key = _create(client, auth, project, name="temp", kind="read", expires_at=future).json()
    assert key["expires_at"] is not None
    assert _resolver(client).resolve(key["secret"], KeyKind.READ).project_id == project["id"]
    _expire(client, key["id"])
    with pytest.raises(Unauthorized, match="API key expired") as exc:
        _resolver(client).resolve(key["secret"], KeyKind.READ)
    assert exc.value.code == "api_key_expired"
    listed = client.get(f"{_keys_url(project)}/{key['id']}", headers=auth["headers"]).json()
    assert listed["status"] == "expired"
    rotate = client.post(f"{_keys_url(project)}/{key['id']}/rotate", headers=auth["headers"])
    assert rotate.status_code == 409
    # Over HTTP, too.
    http = client.get(WHOAMI.format(project_id=project["id"]), headers={"X-API-Key": key["secret"]})
    assert http.status_code == 401
    assert _error(http)["message"] == "API key expired"


def test_expiry_without_offset_is_utc(
    client: TestClient, auth: dict[str, Any], project: dict[str, Any]
) -> None:
    naive = (datetime.now(UTC) + timedelta(days=1)).replace(tzinfo=None, microsecond=0)
    key = _create(client, auth, project, name="t", kind="read", expires_at=naive.isoformat()).json()
    assert key["expires_at"].startswith(naive.isoformat())
    assert key["expires_at"].endswith("Z") or key["expires_at"].endswith("+00:00")


def test_unknown_key_ids_are_404(
    client: TestClient, auth: dict[str, Any], project: dict[str, Any]
) -> None:
    for method, suffix in (("GET", ""), ("POST", "/revoke"), ("POST", "/rotate")):
        response = client.request(
            method, f"{_keys_url(project)}/no-such-key{suffix}", headers=auth["headers"]
        )
        assert response.status_code == 404
        assert _error(response)["message"] == "API key not found"


def test_deleting_a_project_kills_its_keys_at_once(
    client: TestClient, auth: dict[str, Any], project: dict[str, Any], write_key: str
) -> None:
    resolver = _resolver(client)
    resolver.resolve(write_key, KeyKind.WRITE)
    assert (
        client.delete(f"/api/v1/projects/{project['id']}", headers=auth["headers"]).status_code
        == 204
    )
    with pytest.raises(Unauthorized, match="invalid API key"):
        resolver.resolve(write_key, KeyKind.WRITE)


def test_project_changes_reach_the_resolver_at_once(
    client: TestClient, auth: dict[str, Any], project: dict[str, Any], write_key: str
) -> None:
    resolver = _resolver(client)
    assert resolver.resolve(write_key, KeyKind.WRITE).timezone == "UTC"
    client.patch(
        f"/api/v1/projects/{project['id']}",
        json={"timezone": "Asia/Tokyo", "retention_days": 7},
        headers=auth["headers"],
    )
    ctx = resolver.resolve(write_key, KeyKind.WRITE)
    assert (ctx.timezone, ctx.retention_days) == ("Asia/Tokyo", 7)


# --- ProjectReadDep --------------------------------------------------------------------------


def test_read_dependency_accepts_read_keys_and_members(
    client: TestClient, auth: dict[str, Any], project: dict[str, Any], read_key: str
) -> None:
    url = WHOAMI.format(project_id=project["id"])
    by_header = client.get(url, headers={"X-API-Key": read_key})
    assert by_header.status_code == 200, by_header.text
    assert by_header.json()["project_id"] == project["id"]
    assert by_header.json()["key_id"] is not None
    by_bearer = client.get(url, headers={"Authorization": f"Bearer {read_key}"})
    assert by_bearer.json() == by_header.json()
    by_member = client.get(url, headers=auth["headers"])
    assert by_member.json() == {"project_id": project["id"], "role": "owner", "key_id": None}


def test_read_dependency_refusals(
    client: TestClient,
    auth: dict[str, Any],
    org: dict[str, Any],
    project: dict[str, Any],
    read_key: str,
    write_key: str,
    make_user: Any,
) -> None:
    url = WHOAMI.format(project_id=project["id"])
    anonymous = client.get(url)
    assert anonymous.status_code == 401
    write = client.get(url, headers={"X-API-Key": write_key})
    assert write.status_code == 401
    assert "this is a write key" in _error(write)["message"]
    garbage = client.get(url, headers={"X-API-Key": "sx_r_nope"})
    assert garbage.status_code == 401
    assert _error(garbage)["message"] == "invalid API key"
    # A read key of another project, and a user who is not a member: 404 like a missing id.
    other = client.post(
        "/api/v1/projects", json={"org_id": org["id"], "name": "Other"}, headers=auth["headers"]
    ).json()
    other_url = WHOAMI.format(project_id=other["id"])
    assert client.get(other_url, headers={"X-API-Key": read_key}).status_code == 404
    stranger = make_user()
    assert client.get(url, headers=stranger["headers"]).status_code == 404
    missing = client.get(WHOAMI.format(project_id="nope"), headers=auth["headers"])
    assert missing.status_code == 404
