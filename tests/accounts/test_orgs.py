"""Organisations, members and roles, including the last-owner rule and isolation."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

User = dict[str, Any]


def _error(response: Any) -> dict[str, Any]:
    return dict(response.json()["error"])


def _add(client: TestClient, owner: User, org_id: str, user: User, role: str) -> Any:
    return client.post(
        f"/api/v1/orgs/{org_id}/members",
        json={"email": user["email"], "role": role},
        headers=owner["headers"],
    )


def test_create_org_makes_me_owner(client: TestClient, auth: User) -> None:
    response = client.post("/api/v1/orgs", json={"name": "  Acme  "}, headers=auth["headers"])
    assert response.status_code == 201
    org = response.json()
    assert org["name"] == "Acme"
    assert org["role"] == "owner"
    listed = client.get("/api/v1/orgs", headers=auth["headers"]).json()
    assert [o["id"] for o in listed] == [org["id"]]
    members = client.get(f"/api/v1/orgs/{org['id']}/members", headers=auth["headers"]).json()
    assert [(m["user_id"], m["role"]) for m in members] == [(auth["user_id"], "owner")]


@pytest.mark.parametrize(
    "body", [{}, {"name": ""}, {"name": "   "}, {"name": "x" * 201}, {"name": 7}, {"n": "a"}]
)
def test_create_org_validates_the_name(client: TestClient, auth: User, body: Any) -> None:
    response = client.post("/api/v1/orgs", json=body, headers=auth["headers"])
    assert response.status_code == 422
    assert _error(response)["details"][0]["field"].startswith("body")


def test_orgs_need_a_signed_in_user(client: TestClient) -> None:
    assert client.post("/api/v1/orgs", json={"name": "x"}).status_code == 401
    assert client.get("/api/v1/orgs").status_code == 401


def test_get_rename_and_delete_org(client: TestClient, auth: User, org: dict[str, Any]) -> None:
    url = f"/api/v1/orgs/{org['id']}"
    assert client.get(url, headers=auth["headers"]).json()["name"] == org["name"]
    renamed = client.patch(url, json={"name": "Renamed"}, headers=auth["headers"])
    assert renamed.status_code == 200
    assert renamed.json()["name"] == "Renamed"
    assert client.delete(url, headers=auth["headers"]).status_code == 204
    assert client.get(url, headers=auth["headers"]).status_code == 404
    assert client.get("/api/v1/orgs", headers=auth["headers"]).json() == []


def test_deleting_an_org_deletes_its_projects_and_keys(
    client: TestClient, auth: User, org: dict[str, Any], project: dict[str, Any], write_key: str
) -> None:
    from sextant.projects.models import KeyKind

    resolver = client.app.state.key_resolver  # type: ignore[attr-defined]
    assert resolver.resolve(write_key, KeyKind.WRITE).project_id == project["id"]
    assert client.delete(f"/api/v1/orgs/{org['id']}", headers=auth["headers"]).status_code == 204
    assert (
        client.get(f"/api/v1/projects/{project['id']}", headers=auth["headers"]).status_code == 404
    )
    resolver.clear()  # other processes would see it after their cache expires
    with pytest.raises(Exception, match="invalid API key"):
        resolver.resolve(write_key, KeyKind.WRITE)


def test_add_change_and_remove_members(
    client: TestClient, auth: User, org: dict[str, Any], make_user: Any
) -> None:
    bob = make_user(name="Bob")
    added = _add(client, auth, org["id"], bob, "viewer")
    assert added.status_code == 201
    assert added.json() == {
        "user_id": bob["user_id"],
        "email": bob["email"],
        "name": "Bob",
        "role": "viewer",
        "created_at": added.json()["created_at"],
    }
    # Bob now sees the organisation, with his role.
    assert client.get("/api/v1/orgs", headers=bob["headers"]).json()[0]["role"] == "viewer"

    url = f"/api/v1/orgs/{org['id']}/members/{bob['user_id']}"
    changed = client.patch(url, json={"role": "admin"}, headers=auth["headers"])
    assert changed.status_code == 200
    assert changed.json()["role"] == "admin"

    assert client.delete(url, headers=auth["headers"]).status_code == 204
    assert client.get(f"/api/v1/orgs/{org['id']}", headers=bob["headers"]).status_code == 404


def test_member_errors(client: TestClient, auth: User, org: dict[str, Any], make_user: Any) -> None:
    members = f"/api/v1/orgs/{org['id']}/members"
    unknown = client.post(
        members,
        json={"email": "nobody-here@example.com", "role": "member"},
        headers=auth["headers"],
    )
    assert unknown.status_code == 404
    assert "sign up first" in _error(unknown)["message"]
    bob = make_user()
    assert _add(client, auth, org["id"], bob, "member").status_code == 201
    twice = _add(client, auth, org["id"], bob, "viewer")
    assert twice.status_code == 409
    assert _error(twice)["code"] == "already_member"
    bad_role = client.post(
        members, json={"email": bob["email"], "role": "superuser"}, headers=auth["headers"]
    )
    assert bad_role.status_code == 422
    assert _error(bad_role)["details"][0]["field"] == "body.role"
    bad_email = client.post(
        members, json={"email": "not-an-email", "role": "member"}, headers=auth["headers"]
    )
    assert bad_email.status_code == 422
    missing = client.patch(
        f"{members}/no-such-user", json={"role": "viewer"}, headers=auth["headers"]
    )
    assert missing.status_code == 404
    assert client.delete(f"{members}/no-such-user", headers=auth["headers"]).status_code == 404


def test_an_org_always_keeps_an_owner(
    client: TestClient, auth: User, org: dict[str, Any], make_user: Any
) -> None:
    me = f"/api/v1/orgs/{org['id']}/members/{auth['user_id']}"
    demote = client.patch(me, json={"role": "admin"}, headers=auth["headers"])
    assert demote.status_code == 409
    assert _error(demote)["code"] == "last_owner"
    leave = client.delete(me, headers=auth["headers"])
    assert leave.status_code == 409
    # With a second owner, the first may step down or leave.
    carol = make_user()
    assert _add(client, auth, org["id"], carol, "owner").status_code == 201
    assert client.patch(me, json={"role": "member"}, headers=auth["headers"]).status_code == 200
    carol_self = f"/api/v1/orgs/{org['id']}/members/{carol['user_id']}"
    assert client.delete(carol_self, headers=carol["headers"]).status_code == 409
    members = client.get(f"/api/v1/orgs/{org['id']}/members", headers=carol["headers"]).json()
    assert {m["user_id"]: m["role"] for m in members} == {
        auth["user_id"]: "member",
        carol["user_id"]: "owner",
    }


def test_anyone_may_leave(
    client: TestClient, auth: User, org: dict[str, Any], make_user: Any
) -> None:
    viewer = make_user()
    assert _add(client, auth, org["id"], viewer, "viewer").status_code == 201
    own = f"/api/v1/orgs/{org['id']}/members/{viewer['user_id']}"
    assert client.delete(own, headers=viewer["headers"]).status_code == 204
    assert client.get(f"/api/v1/orgs/{org['id']}", headers=viewer["headers"]).status_code == 404


def test_admins_cannot_touch_owners(
    client: TestClient, auth: User, org: dict[str, Any], make_user: Any
) -> None:
    admin, other = make_user(), make_user()
    assert _add(client, auth, org["id"], admin, "admin").status_code == 201
    # Admins manage non-owners...
    assert _add(client, admin, org["id"], other, "member").status_code == 201
    other_url = f"/api/v1/orgs/{org['id']}/members/{other['user_id']}"
    assert (
        client.patch(other_url, json={"role": "admin"}, headers=admin["headers"]).status_code == 200
    )
    # ...but may neither grant the owner role nor change or remove an owner.
    promote = client.patch(other_url, json={"role": "owner"}, headers=admin["headers"])
    assert promote.status_code == 403
    assert "owner" in _error(promote)["message"]
    owner_url = f"/api/v1/orgs/{org['id']}/members/{auth['user_id']}"
    assert (
        client.patch(owner_url, json={"role": "viewer"}, headers=admin["headers"]).status_code
        == 403
    )
    assert client.delete(owner_url, headers=admin["headers"]).status_code == 403


def test_other_orgs_are_invisible(
    client: TestClient, auth: User, org: dict[str, Any], make_user: Any
) -> None:
    """Someone else's organisation answers 404 for every verb, so ids cannot be probed."""
    mallory = make_user()
    base = f"/api/v1/orgs/{org['id']}"
    h = mallory["headers"]
    victim_member = f"{base}/members/{auth['user_id']}"
    responses = [
        client.get(base, headers=h),
        client.patch(base, json={"name": "pwned"}, headers=h),
        client.delete(base, headers=h),
        client.get(f"{base}/members", headers=h),
        client.post(
            f"{base}/members", json={"email": mallory["email"], "role": "owner"}, headers=h
        ),
        client.patch(victim_member, json={"role": "viewer"}, headers=h),
        client.delete(victim_member, headers=h),
    ]
    assert [r.status_code for r in responses] == [404] * len(responses)
    assert all(_error(r)["message"] == "organisation not found" for r in responses)
    # And the answer for a real foreign org equals the answer for an id that never existed.
    ghost = client.get("/api/v1/orgs/00000000-0000-0000-0000-000000000000", headers=h)
    assert ghost.json() == responses[0].json()
    assert client.get(base, headers=auth["headers"]).json()["name"] == org["name"]
    assert mallory["user_id"] not in {
        m["user_id"] for m in client.get(f"{base}/members", headers=auth["headers"]).json()
    }
