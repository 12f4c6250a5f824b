"""Storage access for users, organisations, memberships and refresh tokens."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from sextant.accounts.models import Membership, Organization, RefreshToken, Role, User


def get_user(session: Session, user_id: str) -> User | None:
    return session.get(User, user_id)


def get_user_by_email(session: Session, email: str) -> User | None:
    return session.scalar(select(User).where(User.email == email))


def list_users(session: Session, *, limit: int, offset: int) -> list[User]:
    stmt = select(User).order_by(User.created_at, User.id).limit(limit).offset(offset)
    return list(session.scalars(stmt))


def count_users(session: Session) -> int:
    return int(session.scalar(select(func.count()).select_from(User)) or 0)


def get_refresh_token_by_hash(session: Session, token_hash: str) -> RefreshToken | None:
    return session.scalar(select(RefreshToken).where(RefreshToken.token_hash == token_hash))


def mark_refresh_token_used(session: Session, token_id: str, now: datetime) -> bool:
    """Atomically claim a refresh token; False when someone already used it."""
    result = session.execute(
        update(RefreshToken)
        .where(RefreshToken.id == token_id, RefreshToken.used_at.is_(None))
        .values(used_at=now)
    )
    return bool(getattr(result, "rowcount", 0))


def revoke_refresh_family(session: Session, family_id: str, now: datetime) -> None:
    session.execute(
        update(RefreshToken)
        .where(RefreshToken.family_id == family_id, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=now)
    )


def revoke_refresh_tokens_of_user(session: Session, user_id: str, now: datetime) -> None:
    session.execute(
        update(RefreshToken)
        .where(RefreshToken.user_id == user_id, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=now)
    )


def get_membership(session: Session, *, org_id: str, user_id: str) -> Membership | None:
    return session.scalar(
        select(Membership).where(Membership.org_id == org_id, Membership.user_id == user_id)
    )


def list_orgs_for_user(session: Session, user_id: str) -> list[tuple[Organization, str]]:
    stmt = (
        select(Organization, Membership.role)
        .join(Membership, Membership.org_id == Organization.id)
        .where(Membership.user_id == user_id)
        .order_by(Organization.created_at, Organization.id)
    )
    return [(org, role) for org, role in session.execute(stmt).all()]


def list_members(session: Session, org_id: str) -> list[tuple[Membership, User]]:
    stmt = (
        select(Membership, User)
        .join(User, User.id == Membership.user_id)
        .where(Membership.org_id == org_id)
        .order_by(Membership.created_at, User.email)
    )
    return [(m, u) for m, u in session.execute(stmt).all()]


def count_owners(session: Session, org_id: str) -> int:
    stmt = (
        select(func.count())
        .select_from(Membership)
        .where(Membership.org_id == org_id, Membership.role == Role.OWNER.value)
    )
    return int(session.scalar(stmt) or 0)
