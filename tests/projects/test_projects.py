"""Projects CRUD: time zones, retention, validation and cross-organisation isolation."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient


def _error(response: Any) -> dict[str, Any]:
    return dict(response.json()["error"])


def test_create_project_with_defaults(
    client: TestClient, auth: dict[str, Any], org: dict[str, Any]
) -> None:
    response = client.post(
        "/api/v1/projects", json={"org_id": org["id"], "name": "App"}, headers=auth["headers"]
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["org_id"] == org["id"]
    assert body["timezone"] == "UTC"
    assert body["retention_days"] == 365
    assert body["store_raw_ip"] is False


def test_create_get_list_update_delete(
    client: TestClient, auth: dict[str, Any], org: dict[str, Any]
) -> None:
    h = auth["headers"]
    created = client.post(
        "/api/v1/projects",
        json={
            "org_id": org["id"],
            "name": "Shop",
            "timezone": "Europe/Berlin",
            "retention_days": 90,
        },
        headers=h,
    ).json()
    url = f"/api/v1/projects/{created['id']}"
    assert client.get(url, headers=h).json() == created
    listed = client.get("/api/v1/projects", params={"org_id": org["id"]}, headers=h).json()
    assert [p["id"] for p in listed] == [created["id"]]

    patched = client.patch(
        url,
        json={"name": "Shop EU", "timezone": "America/New_York", "retention_days": 30},
        headers=h,
    )
    assert patched.status_code == 200
    assert patched.json() | {"created_at": None} == created | {
        "name": "Shop EU",
        "timezone": "America/New_York",
        "retention_days": 30,
        "created_at": None,
    }
    # An empty patch changes nothing.
    assert client.patch(url, json={}, headers=h).json()["name"] == "Shop EU"

    assert client.delete(url, headers=h).status_code == 204
    assert client.get(url, headers=h).status_code == 404
    assert client.delete(url, headers=h).status_code == 404


def test_list_spans_my_orgs_and_filters(
    client: TestClient, auth: dict[str, Any], org: dict[str, Any], project: dict[str, Any]
) -> None:
    h = auth["headers"]
    other_org = client.post("/api/v1/orgs", json={"name": "Second"}, headers=h).json()
    other = client.post(
        "/api/v1/projects", json={"org_id": other_org["id"], "name": "API"}, headers=h
    ).json()
    everything = {p["id"] for p in client.get("/api/v1/projects", headers=h).json()}
    assert everything == {project["id"], other["id"]}
    only = client.get("/api/v1/projects", params={"org_id": other_org["id"]}, headers=h).json()
    assert [p["id"] for p in only] == [other["id"]]


@pytest.mark.parametrize(
    ("patch", "field", "message"),
    [
        ({"timezone": "Mars/Olympus_Mons"}, "body.timezone", "unknown time zone"),
        ({"timezone": "../../etc/passwd"}, "body.timezone", "unknown time zone"),
        ({"timezone": ""}, "body.timezone", ""),
        ({"timezone": 5}, "body.timezone", ""),
        ({"retention_days": 0}, "body.retention_days", ""),
        ({"retention_days": 36501}, "body.retention_days", ""),
        ({"retention_days": "forever"}, "body.retention_days", ""),
        ({"name": "p" * 201}, "body.name", "at most 200"),
        ({"name": " "}, "body.name", ""),
        ({"store_raw_ip": "maybe"}, "body.store_raw_ip", ""),
        ({"colour": "blue"}, "body.colour", ""),
    ],
)
def test_bad_project_input_is_a_clear_422(
    client: TestClient,
    auth: dict[str, Any],
    org: dict[str, Any],
    project: dict[str, Any],
    patch: dict[str, Any],
    field: str,
    message: str,
) -> None:
    create = client.post(
        "/api/v1/projects",
        json={"org_id": org["id"], "name": "x", **patch},
        headers=auth["headers"],
    )
    if "name" not in patch:
        assert create.status_code == 422, create.text
        assert field in [d["field"] for d in _error(create)["details"]]
        assert message in _error(create)["message"]
    update = client.patch(f"/api/v1/projects/{project['id']}", json=patch, headers=auth["headers"])
    assert update.status_code == 422, update.text
    error = _error(update)
    assert error["details"][0]["field"] == field
    assert message in error["message"]


def test_project_in_unknown_or_foreign_org_is_404(
    client: TestClient, org: dict[str, Any], make_user: Any
) -> None:
    stranger = make_user()
    foreign = client.post(
        "/api/v1/projects", json={"org_id": org["id"], "name": "x"}, headers=stranger["headers"]
    )
    assert foreign.status_code == 404
    assert _error(foreign)["message"] == "organisation not found"
    listed = client.get(
        "/api/v1/projects", params={"org_id": org["id"]}, headers=stranger["headers"]
    )
    assert listed.status_code == 404
    missing = client.post(
        "/api/v1/projects", json={"org_id": "nope", "name": "x"}, headers=stranger["headers"]
    )
    assert missing.json() == foreign.json()


def test_other_orgs_projects_and_keys_are_invisible(
    client: TestClient,
    auth: dict[str, Any],
    project: dict[str, Any],
    write_key: str,
    make_user: Any,
) -> None:
    """Every project and key route answers 404 to a non-member, exactly as for unknown ids."""
    mallory = make_user()
    h = mallory["headers"]
    keys = client.get(f"/api/v1/projects/{project['id']}/keys", headers=auth["headers"]).json()
    key_id = keys[0]["id"]
    base = f"/api/v1/projects/{project['id']}"
    responses = [
        client.get(base, headers=h),
        client.patch(base, json={"name": "pwned"}, headers=h),
        client.delete(base, headers=h),
        client.get(f"{base}/keys", headers=h),
        client.post(f"{base}/keys", json={"name": "k", "kind": "read"}, headers=h),
        client.get(f"{base}/keys/{key_id}", headers=h),
        client.post(f"{base}/keys/{key_id}/revoke", headers=h),
        client.post(f"{base}/keys/{key_id}/rotate", headers=h),
    ]
    assert [r.status_code for r in responses] == [404] * len(responses)
    ghost = client.get("/api/v1/projects/00000000-0000-0000-0000-000000000000", headers=h)
    assert ghost.json() == responses[0].json()
    assert client.get("/api/v1/projects", headers=h).json() == []
    # Nothing changed for the owner.
    assert client.get(base, headers=auth["headers"]).json()["name"] == project["name"]
    key = client.get(f"{base}/keys/{key_id}", headers=auth["headers"]).json()
    assert key["status"] == "active"


def test_a_key_id_from_another_project_is_404(
    client: TestClient, auth: dict[str, Any], org: dict[str, Any], project: dict[str, Any]
) -> None:
    h = auth["headers"]
    second = client.post(
        "/api/v1/projects", json={"org_id": org["id"], "name": "Second"}, headers=h
    ).json()
    key = client.post(
        f"/api/v1/projects/{second['id']}/keys", json={"name": "k", "kind": "read"}, headers=h
    ).json()
    wrong = f"/api/v1/projects/{project['id']}/keys/{key['id']}"
    assert client.get(wrong, headers=h).status_code == 404
    assert client.post(f"{wrong}/revoke", headers=h).status_code == 404
    right = client.get(f"/api/v1/projects/{second['id']}/keys/{key['id']}", headers=h)
    assert right.json()["status"] == "active"


def test_projects_need_a_signed_in_user(client: TestClient, project: dict[str, Any]) -> None:
    assert client.get("/api/v1/projects").status_code == 401
    assert client.get(f"/api/v1/projects/{project['id']}").status_code == 401
