"""HTTP endpoints for projects and their API keys."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response, status

from sextant.accounts.dependencies import CurrentUserDep, get_current_user
from sextant.accounts.schemas import error_responses
from sextant.core.deps import EventStoreDep, SessionDep
from sextant.projects import service
from sextant.projects.dependencies import KeyResolverDep
from sextant.projects.models import ApiKey, KeyKind, Project
from sextant.projects.schemas import (
    ApiKeyCreate,
    ApiKeyRead,
    ApiKeyWithSecret,
    ProjectCreate,
    ProjectRead,
    ProjectUpdate,
)

router = APIRouter(
    prefix="/api/v1/projects",
    tags=["projects"],
    dependencies=[Depends(get_current_user)],
    responses=error_responses(401, 403, 404, 409, 422),
)


def _project_read(project: Project) -> ProjectRead:
    return ProjectRead.model_validate(project)


def _key_read(key: ApiKey) -> ApiKeyRead:
    return ApiKeyRead(
        id=key.id,
        project_id=key.project_id,
        name=key.name,
        kind=KeyKind(key.kind),
        prefix=key.prefix,
        status=service.key_status(key),
        created_at=key.created_at,
        last_used_at=key.last_used_at,
        expires_at=key.expires_at,
        revoked_at=key.revoked_at,
    )


def _key_with_secret(key: ApiKey, secret: str) -> ApiKeyWithSecret:
    return ApiKeyWithSecret(**_key_read(key).model_dump(), secret=secret)


# --- projects --------------------------------------------------------------------------------


@router.post("", status_code=status.HTTP_201_CREATED)
def create_project(body: ProjectCreate, user: CurrentUserDep, session: SessionDep) -> ProjectRead:
    """Create a project in an organisation (owner, admin)."""
    access = service.create_project(
        session,
        user=user,
        org_id=body.org_id,
        name=body.name,
        timezone=body.timezone,
        retention_days=body.retention_days,
        store_raw_ip=body.store_raw_ip,
    )
    return _project_read(access.project)


@router.get("")
def list_projects(
    user: CurrentUserDep,
    session: SessionDep,
    org_id: Annotated[str | None, Query(max_length=64, description="Only this org.")] = None,
) -> list[ProjectRead]:
    """Projects in the organisations I belong to."""
    return [
        _project_read(a.project) for a in service.list_projects(session, user=user, org_id=org_id)
    ]


@router.get("/{project_id}")
def get_project(project_id: str, user: CurrentUserDep, session: SessionDep) -> ProjectRead:
    """One project."""
    return _project_read(
        service.get_project_access(session, user=user, project_id=project_id).project
    )


@router.patch("/{project_id}")
def update_project(
    project_id: str,
    body: ProjectUpdate,
    user: CurrentUserDep,
    session: SessionDep,
    resolver: KeyResolverDep,
) -> ProjectRead:
    """Rename a project or change its time zone, retention or IP storage (owner, admin)."""
    access = service.get_project_access(session, user=user, project_id=project_id)
    service.update_project(
        session,
        access=access,
        resolver=resolver,
        name=body.name,
        timezone=body.timezone,
        retention_days=body.retention_days,
        store_raw_ip=body.store_raw_ip,
    )
    return _project_read(access.project)


@router.delete("/{project_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_project(
    project_id: str,
    user: CurrentUserDep,
    session: SessionDep,
    resolver: KeyResolverDep,
    store: EventStoreDep,
) -> Response:
    """Delete a project, its API keys and all its events (owner, admin).

    Its keys stop working at once. This cannot be undone.
    """
    access = service.get_project_access(session, user=user, project_id=project_id)
    service.delete_project(session, access=access, resolver=resolver, store=store)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


# --- API keys --------------------------------------------------------------------------------


@router.get("/{project_id}/keys")
def list_keys(project_id: str, user: CurrentUserDep, session: SessionDep) -> list[ApiKeyRead]:
    """The project's API keys, with their status; never their secrets (owner, admin, member)."""
    access = service.get_project_access(session, user=user, project_id=project_id)
    return [_key_read(k) for k in service.list_keys(session, access=access)]


@router.post("/{project_id}/keys", status_code=status.HTTP_201_CREATED)
def create_key(
    project_id: str, body: ApiKeyCreate, user: CurrentUserDep, session: SessionDep
) -> ApiKeyWithSecret:
    """Create a write key (sends events; safe in a web page) or a read key (queries).

    The secret is in the response only this once.
    """
    access = service.get_project_access(session, user=user, project_id=project_id)
    key, secret = service.create_key(
        session, access=access, name=body.name, kind=body.kind, expires_at=body.expires_at
    )
    return _key_with_secret(key, secret)


@router.get("/{project_id}/keys/{key_id}")
def get_key(project_id: str, key_id: str, user: CurrentUserDep, session: SessionDep) -> ApiKeyRead:
    """One API key (without its secret)."""
    access = service.get_project_access(session, user=user, project_id=project_id)
    return _key_read(service.get_key_or_raise(session, access=access, key_id=key_id))


@router.post("/{project_id}/keys/{key_id}/revoke")
def revoke_key(
    project_id: str,
    key_id: str,
    user: CurrentUserDep,
    session: SessionDep,
    resolver: KeyResolverDep,
) -> ApiKeyRead:
    """Revoke an API key. It stops working at once."""
    access = service.get_project_access(session, user=user, project_id=project_id)
    return _key_read(service.revoke_key(session, access=access, key_id=key_id, resolver=resolver))


@router.post("/{project_id}/keys/{key_id}/rotate")
def rotate_key(
    project_id: str,
    key_id: str,
    user: CurrentUserDep,
    session: SessionDep,
    resolver: KeyResolverDep,
) -> ApiKeyWithSecret:
    """Give an API key a new secret. The old secret stops working at once."""
    access = service.get_project_access(session, user=user, project_id=project_id)
    key, secret = service.rotate_key(session, access=access, key_id=key_id, resolver=resolver)
    return _key_with_secret(key, secret)
