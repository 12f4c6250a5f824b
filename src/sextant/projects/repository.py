"""Storage access for projects and API keys. Every lookup is scoped by tenant or by key."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from sextant.accounts.models import Membership
from sextant.projects.models import ApiKey, Project


def get_project(session: Session, project_id: str) -> Project | None:
    return session.get(Project, project_id)


def get_project_with_role(
    session: Session, *, project_id: str, user_id: str
) -> tuple[Project, str] | None:
    """The project and the user's role in its organisation, or None when not a member."""
    stmt = (
        select(Project, Membership.role)
        .join(Membership, Membership.org_id == Project.org_id)
        .where(Project.id == project_id, Membership.user_id == user_id)
    )
    row = session.execute(stmt).first()
    return (row[0], row[1]) if row else None


def list_projects_for_user(
    session: Session, *, user_id: str, org_id: str | None = None
) -> list[tuple[Project, str]]:
    stmt = (
        select(Project, Membership.role)
        .join(Membership, Membership.org_id == Project.org_id)
        .where(Membership.user_id == user_id)
        .order_by(Project.created_at, Project.id)
    )
    if org_id is not None:
        stmt = stmt.where(Project.org_id == org_id)
    return [(p, role) for p, role in session.execute(stmt).all()]


def list_keys(session: Session, project_id: str) -> list[ApiKey]:
    stmt = (
        select(ApiKey).where(ApiKey.project_id == project_id).order_by(ApiKey.created_at, ApiKey.id)
    )
    return list(session.scalars(stmt))


def get_key(session: Session, *, project_id: str, key_id: str) -> ApiKey | None:
    return session.scalar(
        select(ApiKey).where(ApiKey.id == key_id, ApiKey.project_id == project_id)
    )


def get_key_with_project_by_prefix(session: Session, prefix: str) -> tuple[ApiKey, Project] | None:
    stmt = (
        select(ApiKey, Project)
        .join(Project, Project.id == ApiKey.project_id)
        .where(ApiKey.prefix == prefix)
    )
    row = session.execute(stmt).first()
    return (row[0], row[1]) if row else None


def touch_key(session: Session, key_id: str, now: datetime) -> None:
    session.execute(update(ApiKey).where(ApiKey.id == key_id).values(last_used_at=now))
