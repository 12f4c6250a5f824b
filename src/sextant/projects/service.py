"""Projects and API keys: who may change what, key issue/rotation/revocation."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import structlog
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from sextant.accounts import service as accounts_service
from sextant.accounts.models import Role, User
from sextant.accounts.permissions import Permission, can, describe
from sextant.core.db import utcnow
from sextant.core.errors import Conflict, Forbidden, NotFound, Unprocessable
from sextant.core.eventstore import EventStore
from sextant.core.security import hash_token, random_alphanumeric
from sextant.governance.service import purge_projects
from sextant.projects import repository
from sextant.projects.dependencies import (
    KEY_PREFIXES,
    KEY_RANDOM_LENGTH,
    KeyResolver,
    key_prefix_of,
)
from sextant.projects.models import ApiKey, KeyKind, Project

log = structlog.get_logger("sextant.projects")

_KEY_ATTEMPTS = 5  # a prefix collision is astronomically unlikely; retry anyway


@dataclass(frozen=True, slots=True)
class ProjectAccess:
    project: Project
    role: Role

    def require(self, permission: Permission) -> None:
        if not can(self.role, permission):
            raise Forbidden(
                f"your role ({self.role.value}) may not {describe(permission)}",
                code="insufficient_role",
            )


def key_status(key: ApiKey, now: datetime | None = None) -> str:
    if key.revoked_at is not None:
        return "revoked"
    if key.expires_at is not None and key.expires_at <= (now or utcnow()):
        return "expired"
    return "active"


# --- projects --------------------------------------------------------------------------------


def get_project_access(session: Session, *, user: User, project_id: str) -> ProjectAccess:
    """The caller's access to a project; 404 (never 403) when not a member of its org."""
    found = repository.get_project_with_role(session, project_id=project_id, user_id=user.id)
    if found is None:
        raise NotFound("project not found")
    project, role = found
    return ProjectAccess(project=project, role=Role(role))


def get_project_or_raise(session: Session, project_id: str) -> Project:
    project = repository.get_project(session, project_id)
    if project is None:
        raise NotFound("project not found")
    return project


def create_project(
    session: Session,
    *,
    user: User,
    org_id: str,
    name: str,
    timezone: str,
    retention_days: int,
    store_raw_ip: bool,
) -> ProjectAccess:
    access = accounts_service.get_org_access(session, user=user, org_id=org_id)
    access.require(Permission.MANAGE_PROJECTS)
    project = Project(
        org_id=org_id,
        name=name,
        timezone=timezone,
        retention_days=retention_days,
        store_raw_ip=store_raw_ip,
    )
    session.add(project)
    session.commit()
    log.info("project_created", project_id=project.id, org_id=org_id)
    return ProjectAccess(project=project, role=access.role)


def list_projects(session: Session, *, user: User, org_id: str | None) -> list[ProjectAccess]:
    if org_id is not None:
        accounts_service.get_org_access(session, user=user, org_id=org_id)  # 404 if not mine
    return [
        ProjectAccess(project=p, role=Role(role))
        for p, role in repository.list_projects_for_user(session, user_id=user.id, org_id=org_id)
    ]


def update_project(
    session: Session,
    *,
    access: ProjectAccess,
    resolver: KeyResolver,
    name: str | None = None,
    timezone: str | None = None,
    retention_days: int | None = None,
    store_raw_ip: bool | None = None,
) -> ProjectAccess:
    access.require(Permission.MANAGE_PROJECTS)
    project = access.project
    if name is not None:
        project.name = name
    if timezone is not None:
        project.timezone = timezone
    if retention_days is not None:
        project.retention_days = retention_days
    if store_raw_ip is not None:
        project.store_raw_ip = store_raw_ip
    session.commit()
    resolver.invalidate_project(project.id)
    return access


def delete_project(
    session: Session, *, access: ProjectAccess, resolver: KeyResolver, store: EventStore
) -> None:
    """Delete a project, its keys and its events. Its keys stop working at once here."""
    access.require(Permission.MANAGE_PROJECTS)
    project_id = access.project.id
    session.delete(access.project)
    session.commit()
    resolver.invalidate_project(project_id)
    purge_projects(store, [project_id])
    log.info("project_deleted", project_id=project_id)


# --- API keys --------------------------------------------------------------------------------


def new_key_secret(kind: KeyKind) -> str:
    return KEY_PREFIXES[kind] + random_alphanumeric(KEY_RANDOM_LENGTH)


def list_keys(session: Session, *, access: ProjectAccess) -> list[ApiKey]:
    access.require(Permission.MANAGE_KEYS)
    return repository.list_keys(session, access.project.id)


def get_key_or_raise(session: Session, *, access: ProjectAccess, key_id: str) -> ApiKey:
    access.require(Permission.MANAGE_KEYS)
    key = repository.get_key(session, project_id=access.project.id, key_id=key_id)
    if key is None:
        raise NotFound("API key not found")
    return key


def _check_expiry(expires_at: datetime | None) -> None:
    if expires_at is not None and expires_at <= utcnow():
        raise Unprocessable(
            "expires_at must be in the future",
            details=[{"field": "body.expires_at", "message": "must be in the future"}],
        )


def _assign_secret(session: Session, key: ApiKey, kind: KeyKind) -> str:
    for _ in range(_KEY_ATTEMPTS):
        secret = new_key_secret(kind)
        key.prefix = key_prefix_of(secret)
        key.secret_hash = hash_token(secret)
        session.add(key)
        try:
            session.commit()
        except IntegrityError:
            session.rollback()
            continue
        return secret
    raise Conflict("could not allocate a unique key prefix; try again")  # pragma: no cover


def create_key(
    session: Session,
    *,
    access: ProjectAccess,
    name: str,
    kind: KeyKind,
    expires_at: datetime | None,
) -> tuple[ApiKey, str]:
    """Issue a key; the secret is returned once and only its hash is kept."""
    access.require(Permission.MANAGE_KEYS)
    _check_expiry(expires_at)
    key = ApiKey(project_id=access.project.id, name=name, kind=kind.value, expires_at=expires_at)
    secret = _assign_secret(session, key, kind)
    log.info("api_key_created", project_id=access.project.id, key_id=key.id, kind=kind.value)
    return key, secret


def create_key_for_project(
    session: Session, *, project_id: str, name: str, kind: KeyKind, expires_at: datetime | None
) -> tuple[ApiKey, str]:
    """Issue a key without a signed-in user (the `sextant key create` command)."""
    project = get_project_or_raise(session, project_id)
    return create_key(
        session,
        access=ProjectAccess(project=project, role=Role.OWNER),
        name=name,
        kind=kind,
        expires_at=expires_at,
    )


def revoke_key(
    session: Session, *, access: ProjectAccess, key_id: str, resolver: KeyResolver
) -> ApiKey:
    """Revoke a key; it stops working at once. Revoking twice is harmless."""
    key = get_key_or_raise(session, access=access, key_id=key_id)
    if key.revoked_at is None:
        key.revoked_at = utcnow()
        session.commit()
        log.info("api_key_revoked", project_id=access.project.id, key_id=key.id)
    resolver.invalidate_key(key.prefix)
    return key


def rotate_key(
    session: Session, *, access: ProjectAccess, key_id: str, resolver: KeyResolver
) -> tuple[ApiKey, str]:
    """Give a key a new secret; the old secret stops working at once."""
    key = get_key_or_raise(session, access=access, key_id=key_id)
    status = key_status(key)
    if status != "active":
        raise Conflict(f"this key is {status}; create a new key instead", code=f"key_{status}")
    old_prefix = key.prefix
    secret = _assign_secret(session, key, KeyKind(key.kind))
    resolver.invalidate_key(old_prefix)
    log.info("api_key_rotated", project_id=access.project.id, key_id=key.id)
    return key, secret
