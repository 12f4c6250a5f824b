"""The role matrix, enforced on every endpoint: one row per action, one column per role."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

from sextant.accounts.models import Role
from sextant.accounts.permissions import ROLE_PERMISSIONS, Permission
from sextant.projects.context import ProjectContext
from sextant.projects.dependencies import ProjectReadDep

ROLES = ["owner", "admin", "member", "viewer"]

Action = Callable[[TestClient, dict[str, Any], dict[str, Any]], Any]


def _act(method: str, path: str, body: Any = None) -> Action:
    """An action: `path` may use {org}, {project}, {key}, {target} and {target_email}."""

    def run(client: TestClient, ctx: dict[str, Any], actor: dict[str, Any]) -> Any:
        url = path.format(**ctx)
        payload = None
        if body is not None:
            payload = {k: (v.format(**ctx) if isinstance(v, str) else v) for k, v in body.items()}
        return client.request(method, url, json=payload, headers=actor["headers"])

    return run


# action -> expected status for (owner, admin, member, viewer)
MATRIX: list[tuple[str, Action, tuple[int, int, int, int]]] = [
    ("view org", _act("GET", "/api/v1/orgs/{org}"), (200, 200, 200, 200)),
    ("list members", _act("GET", "/api/v1/orgs/{org}/members"), (200, 200, 200, 200)),
    ("view project", _act("GET", "/api/v1/projects/{project}"), (200, 200, 200, 200)),
    ("list projects", _act("GET", "/api/v1/projects?org_id={org}"), (200, 200, 200, 200)),
    (
        "read analytics (member token)",
        _act("GET", "/_test/projects/{project}/whoami"),
        (200, 200, 200, 200),
    ),
    ("list keys", _act("GET", "/api/v1/projects/{project}/keys"), (200, 200, 200, 403)),
    ("view key", _act("GET", "/api/v1/projects/{project}/keys/{key}"), (200, 200, 200, 403)),
    (
        "create key",
        _act("POST", "/api/v1/projects/{project}/keys", {"name": "k", "kind": "read"}),
        (201, 201, 201, 403),
    ),
    (
        "rotate key",
        _act("POST", "/api/v1/projects/{project}/keys/{key}/rotate"),
        (200, 200, 200, 403),
    ),
    (
        "revoke key",
        _act("POST", "/api/v1/projects/{project}/keys/{key}/revoke"),
        (200, 200, 200, 403),
    ),
    (
        "create project",
        _act("POST", "/api/v1/projects", {"org_id": "{org}", "name": "p2"}),
        (201, 201, 403, 403),
    ),
    (
        "update project",
        _act("PATCH", "/api/v1/projects/{project}", {"retention_days": 30}),
        (200, 200, 403, 403),
    ),
    ("delete project", _act("DELETE", "/api/v1/projects/{project}"), (204, 204, 403, 403)),
    ("rename org", _act("PATCH", "/api/v1/orgs/{org}", {"name": "New name"}), (200, 200, 403, 403)),
    (
        "add member",
        _act("POST", "/api/v1/orgs/{org}/members", {"email": "{target_email}", "role": "viewer"}),
        (201, 201, 403, 403),
    ),
    (
        "change member role",
        _act("PATCH", "/api/v1/orgs/{org}/members/{target}", {"role": "member"}),
        (200, 200, 403, 403),
    ),
    ("remove member", _act("DELETE", "/api/v1/orgs/{org}/members/{target}"), (204, 204, 403, 403)),
    (
        "grant owner",
        _act("POST", "/api/v1/orgs/{org}/members", {"email": "{target_email}", "role": "owner"}),
        (201, 403, 403, 403),
    ),
    ("delete org", _act("DELETE", "/api/v1/orgs/{org}"), (204, 403, 403, 403)),
]


@pytest.fixture(scope="module")
def whoami_route(app: Any) -> None:
    """A read route guarded by `ProjectReadDep`, as the analytics endpoints are."""
    if any(getattr(r, "path", "") == "/_test/projects/{project_id}/whoami" for r in app.routes):
        return

    def whoami(project_id: str, ctx: ProjectReadDep) -> dict[str, Any]:
        assert isinstance(ctx, ProjectContext)
        return {"project_id": ctx.project_id, "role": ctx.role, "key_id": ctx.key_id}

    app.add_api_route(
        "/_test/projects/{project_id}/whoami", whoami, methods=["GET"], include_in_schema=False
    )


@pytest.mark.usefixtures("whoami_route")
@pytest.mark.parametrize("role_index", range(4), ids=ROLES)
@pytest.mark.parametrize(("action", "run", "expected"), MATRIX, ids=[m[0] for m in MATRIX])
def test_role_matrix(
    client: TestClient,
    auth: dict[str, Any],
    org: dict[str, Any],
    project: dict[str, Any],
    make_user: Any,
    role_index: int,
    action: str,
    run: Action,
    expected: tuple[int, int, int, int],
) -> None:
    role = ROLES[role_index]
    if role == "owner":
        actor = auth
    else:
        actor = make_user()
        added = client.post(
            f"/api/v1/orgs/{org['id']}/members",
            json={"email": actor["email"], "role": role},
            headers=auth["headers"],
        )
        assert added.status_code == 201
    key = client.post(
        f"/api/v1/projects/{project['id']}/keys",
        json={"name": "k", "kind": "write"},
        headers=auth["headers"],
    ).json()
    target = make_user()
    if action in {"change member role", "remove member"}:
        client.post(
            f"/api/v1/orgs/{org['id']}/members",
            json={"email": target["email"], "role": "viewer"},
            headers=auth["headers"],
        )
    ctx = {
        "org": org["id"],
        "project": project["id"],
        "key": key["id"],
        "target": target["user_id"],
        "target_email": target["email"],
    }
    response = run(client, ctx, actor)
    assert response.status_code == expected[role_index], (action, role, response.text)
    if response.status_code == 403:
        assert response.json()["error"]["code"] == "insufficient_role"
        assert role in response.json()["error"]["message"]


def test_matrix_table_matches_the_permission_sets() -> None:
    """The documented matrix (README) is generated from this mapping; keep them in step."""
    assert ROLE_PERMISSIONS[Role.VIEWER] == {Permission.VIEW, Permission.READ_ANALYTICS}
    assert ROLE_PERMISSIONS[Role.MEMBER] - ROLE_PERMISSIONS[Role.VIEWER] == {Permission.MANAGE_KEYS}
    assert ROLE_PERMISSIONS[Role.ADMIN] - ROLE_PERMISSIONS[Role.MEMBER] == {
        Permission.MANAGE_PROJECTS,
        Permission.MANAGE_MEMBERS,
        Permission.MANAGE_ORG,
    }
    assert ROLE_PERMISSIONS[Role.OWNER] - ROLE_PERMISSIONS[Role.ADMIN] == {
        Permission.MANAGE_OWNERS,
        Permission.DELETE_ORG,
    }
