"""Accounts rules: sign-up, sign-in with throttling, token rotation, organisations and roles."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import structlog
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from sextant.accounts import repository
from sextant.accounts.models import Membership, Organization, RefreshToken, Role, User
from sextant.accounts.permissions import Permission, can, describe
from sextant.accounts.schemas import MembershipSummary, TokenPair
from sextant.config import Settings
from sextant.core.db import new_id, utcnow
from sextant.core.errors import (
    BadRequest,
    Conflict,
    Forbidden,
    NotFound,
    TooManyRequests,
    Unauthorized,
)
from sextant.core.ratelimit import RateLimiter
from sextant.core.security import (
    InvalidToken,
    Passwords,
    create_access_token,
    decode_access_token,
    fingerprint,
    hash_token,
    passwords,
    random_token,
)
from sextant.projects.models import Project

log = structlog.get_logger("sextant.accounts")


def password_hasher(settings: Settings) -> Passwords:
    return passwords(settings.password_hash_time_cost, settings.password_hash_memory_kib)


# --- users -----------------------------------------------------------------------------------


def create_user(
    session: Session,
    *,
    settings: Settings,
    email: str,
    password: str,
    name: str,
    is_admin: bool = False,
) -> User:
    """Create a user; the caller has checked who may do so."""
    email = email.strip().lower()
    if repository.get_user_by_email(session, email) is not None:
        raise Conflict("a user with this email already exists", code="email_taken")
    user = User(
        email=email,
        name=name,
        password_hash=password_hasher(settings).hash(password),
        is_active=True,
        is_admin=is_admin,
        password_changed_at=utcnow(),
    )
    session.add(user)
    try:
        session.commit()
    except IntegrityError as exc:  # a concurrent sign-up with the same email
        session.rollback()
        raise Conflict("a user with this email already exists", code="email_taken") from exc
    log.info("user_created", user_id=user.id, is_admin=is_admin)
    return user


def register(session: Session, *, settings: Settings, email: str, password: str, name: str) -> User:
    if not settings.registration_enabled:
        raise Forbidden(
            "registration is disabled on this server; ask an administrator to create your account",
            code="registration_disabled",
        )
    return create_user(session, settings=settings, email=email, password=password, name=name)


def update_user(
    session: Session,
    user: User,
    *,
    name: str | None = None,
    is_active: bool | None = None,
    is_admin: bool | None = None,
) -> User:
    if name is not None:
        user.name = name
    if is_admin is not None:
        user.is_admin = is_admin
    if is_active is not None and is_active != user.is_active:
        user.is_active = is_active
        if not is_active:
            repository.revoke_refresh_tokens_of_user(session, user.id, utcnow())
    session.commit()
    return user


def admin_update_user(
    session: Session,
    *,
    admin: User,
    user_id: str,
    name: str | None,
    is_active: bool | None,
    is_admin: bool | None,
) -> User:
    user = get_user_or_raise(session, user_id)
    if user.id == admin.id and (is_active is False or is_admin is False):
        raise Conflict("you cannot deactivate or demote yourself", code="cannot_change_self")
    return update_user(session, user, name=name, is_active=is_active, is_admin=is_admin)


def list_users(session: Session, *, limit: int, offset: int) -> list[User]:
    return repository.list_users(session, limit=limit, offset=offset)


def get_user_or_raise(session: Session, user_id: str) -> User:
    user = repository.get_user(session, user_id)
    if user is None:
        raise NotFound("user not found")
    return user


def memberships_of(session: Session, user: User) -> list[MembershipSummary]:
    return [
        MembershipSummary(org_id=org.id, org_name=org.name, role=Role(role))
        for org, role in repository.list_orgs_for_user(session, user.id)
    ]


# --- sign-in and throttling ------------------------------------------------------------------


def _account_limit(settings: Settings) -> str:
    return f"{settings.login_max_failures}/{settings.login_window_seconds} second"


def _ip_limit(settings: Settings) -> str:
    return f"{settings.login_max_failures_per_ip}/{settings.login_window_seconds} second"


def _check_throttle(limiter: RateLimiter, settings: Settings, *, email: str, ip: str) -> None:
    for limit, key, what in (
        (_account_limit(settings), f"login:account:{email}", "this account"),
        (_ip_limit(settings), f"login:ip:{ip}", "your address"),
    ):
        if not limiter.allowed(limit, key):
            raise TooManyRequests(
                f"too many failed sign-in attempts for {what}; try again later",
                retry_after=limiter.retry_after(limit, key),
                code="login_throttled",
            )


def _count_failure(limiter: RateLimiter, settings: Settings, *, email: str, ip: str) -> None:
    limiter.count(_account_limit(settings), f"login:account:{email}")
    limiter.count(_ip_limit(settings), f"login:ip:{ip}")


def authenticate(
    session: Session,
    *,
    settings: Settings,
    limiter: RateLimiter,
    email: str,
    password: str,
    ip: str,
) -> User:
    """Check a password. Failures count against the account and the address; a success
    clears nothing, so a signed-in user cannot unlock an attacker's other addresses."""
    email = email.strip().lower()
    _check_throttle(limiter, settings, email=email, ip=ip)
    hasher = password_hasher(settings)
    user = repository.get_user_by_email(session, email)
    if user is None:
        hasher.verify_dummy(password)
        _count_failure(limiter, settings, email=email, ip=ip)
        raise Unauthorized("incorrect email or password", code="invalid_credentials")
    if not hasher.verify(user.password_hash, password):
        _count_failure(limiter, settings, email=email, ip=ip)
        raise Unauthorized("incorrect email or password", code="invalid_credentials")
    if not user.is_active:
        raise Forbidden("this account is deactivated", code="account_inactive")
    if hasher.needs_rehash(user.password_hash):
        user.password_hash = hasher.hash(password)
        session.commit()
    return user


# --- tokens ----------------------------------------------------------------------------------


def _password_version(user: User) -> str:
    return fingerprint(user.password_hash)


def issue_tokens(
    session: Session, *, settings: Settings, user: User, family_id: str | None = None
) -> TokenPair:
    access = create_access_token(
        subject=user.id,
        secret=settings.secret_key.get_secret_value(),
        ttl_seconds=settings.access_token_ttl_seconds,
        claims={"pwv": _password_version(user)},
    )
    refresh = random_token(32)
    session.add(
        RefreshToken(
            user_id=user.id,
            family_id=family_id or new_id(),
            token_hash=hash_token(refresh),
            expires_at=utcnow() + timedelta(days=settings.refresh_token_ttl_days),
        )
    )
    session.commit()
    return TokenPair(access_token=access.token, refresh_token=refresh, expires_in=access.expires_in)


def refresh(session: Session, *, settings: Settings, token: str) -> TokenPair:
    """Exchange a refresh token for a new pair. Presenting a token twice means it leaked:
    the whole family (every token descended from that sign-in) is revoked."""
    row = repository.get_refresh_token_by_hash(session, hash_token(token))
    if row is None:
        raise Unauthorized("invalid refresh token", code="invalid_refresh_token")
    now = utcnow()
    if row.revoked_at is not None:
        raise Unauthorized("refresh token revoked; sign in again", code="refresh_token_revoked")
    if row.used_at is not None or not repository.mark_refresh_token_used(session, row.id, now):
        session.rollback()
        repository.revoke_refresh_family(session, row.family_id, now)
        session.commit()
        log.warning("refresh_token_reused", user_id=row.user_id, family_id=row.family_id)
        raise Unauthorized(
            "refresh token already used; this session was revoked, sign in again",
            code="refresh_token_reused",
        )
    if row.expires_at <= now:
        session.commit()
        raise Unauthorized("refresh token expired; sign in again", code="refresh_token_expired")
    user = repository.get_user(session, row.user_id)
    if user is None:
        raise Unauthorized("invalid refresh token", code="invalid_refresh_token")
    if not user.is_active:
        session.commit()
        raise Forbidden("this account is deactivated", code="account_inactive")
    return issue_tokens(session, settings=settings, user=user, family_id=row.family_id)


def logout(session: Session, *, token: str, everywhere: bool) -> None:
    """Revoke the session the refresh token belongs to (or all of the user's sessions).
    Unknown tokens are ignored, so logging out twice is harmless."""
    row = repository.get_refresh_token_by_hash(session, hash_token(token))
    if row is None:
        return
    now = utcnow()
    if everywhere:
        repository.revoke_refresh_tokens_of_user(session, row.user_id, now)
    else:
        repository.revoke_refresh_family(session, row.family_id, now)
    session.commit()


def change_password(
    session: Session,
    *,
    settings: Settings,
    limiter: RateLimiter,
    user: User,
    current_password: str,
    new_password: str,
    ip: str,
) -> TokenPair:
    """Set a new password, end every session and access token, and start a new session."""
    _check_throttle(limiter, settings, email=user.email, ip=ip)
    hasher = password_hasher(settings)
    if not hasher.verify(user.password_hash, current_password):
        _count_failure(limiter, settings, email=user.email, ip=ip)
        raise BadRequest("current password is incorrect", code="invalid_password")
    if current_password == new_password:
        raise BadRequest(
            "the new password must differ from the current one", code="password_unchanged"
        )
    now = utcnow()
    user.password_hash = hasher.hash(new_password)
    user.password_changed_at = now
    repository.revoke_refresh_tokens_of_user(session, user.id, now)
    session.commit()
    log.info("password_changed", user_id=user.id)
    return issue_tokens(session, settings=settings, user=user)


def user_from_access_token(session: Session, *, settings: Settings, token: str) -> User:
    try:
        claims = decode_access_token(token, secret=settings.secret_key.get_secret_value())
    except InvalidToken as exc:
        raise Unauthorized(exc.message, headers={"WWW-Authenticate": "Bearer"}) from exc
    user = repository.get_user(session, str(claims["sub"]))
    if user is None or claims.get("pwv") != _password_version(user):
        raise Unauthorized(
            "access token revoked; sign in again", headers={"WWW-Authenticate": "Bearer"}
        )
    if not user.is_active:
        raise Forbidden("this account is deactivated", code="account_inactive")
    return user


# --- organisations and members ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OrgAccess:
    org: Organization
    role: Role

    def require(self, permission: Permission) -> None:
        if not can(self.role, permission):
            raise Forbidden(
                f"your role ({self.role.value}) may not {describe(permission)}",
                code="insufficient_role",
            )


def get_org_access(session: Session, *, user: User, org_id: str) -> OrgAccess:
    """The caller's access to an organisation; 404 (never 403) when they are not a member."""
    membership = repository.get_membership(session, org_id=org_id, user_id=user.id)
    org = session.get(Organization, org_id) if membership is not None else None
    if membership is None or org is None:
        raise NotFound("organisation not found")
    return OrgAccess(org=org, role=Role(membership.role))


def create_org(session: Session, *, user: User, name: str) -> OrgAccess:
    org = Organization(name=name)
    session.add(org)
    session.flush()
    session.add(Membership(org_id=org.id, user_id=user.id, role=Role.OWNER.value))
    session.commit()
    log.info("org_created", org_id=org.id, user_id=user.id)
    return OrgAccess(org=org, role=Role.OWNER)


def list_orgs(session: Session, *, user: User) -> list[OrgAccess]:
    return [
        OrgAccess(org=org, role=Role(role))
        for org, role in repository.list_orgs_for_user(session, user.id)
    ]


def rename_org(session: Session, *, access: OrgAccess, name: str) -> OrgAccess:
    access.require(Permission.MANAGE_ORG)
    access.org.name = name
    session.commit()
    return access


def delete_org(session: Session, *, access: OrgAccess) -> list[str]:
    """Delete the organisation and (by cascade) its projects; returns those project ids."""
    access.require(Permission.DELETE_ORG)
    project_ids = list(
        session.scalars(select(Project.id).where(Project.org_id == access.org.id)).all()
    )
    session.delete(access.org)
    session.commit()
    log.info("org_deleted", org_id=access.org.id, projects=len(project_ids))
    return project_ids


def list_members(session: Session, *, access: OrgAccess) -> list[tuple[Membership, User]]:
    access.require(Permission.VIEW)
    return repository.list_members(session, access.org.id)


def _require_role_change(access: OrgAccess, *, old: Role | None, new: Role | None) -> None:
    access.require(Permission.MANAGE_MEMBERS)
    if Role.OWNER in (old, new):
        access.require(Permission.MANAGE_OWNERS)


def _lock_org(session: Session, org_id: str) -> None:
    # On PostgreSQL, serialise owner changes per organisation so two concurrent demotions
    # cannot leave it without an owner. SQLite serialises writers on its own.
    session.get(Organization, org_id, with_for_update=True, populate_existing=True)


def add_member(session: Session, *, access: OrgAccess, email: str, role: Role) -> Membership:
    _require_role_change(access, old=None, new=role)
    user = repository.get_user_by_email(session, email.strip().lower())
    if user is None:
        raise NotFound("no user with this email; they must sign up first", code="user_not_found")
    if repository.get_membership(session, org_id=access.org.id, user_id=user.id) is not None:
        raise Conflict("this user is already a member", code="already_member")
    membership = Membership(org_id=access.org.id, user_id=user.id, role=role.value)
    session.add(membership)
    try:
        session.commit()
    except IntegrityError as exc:
        session.rollback()
        raise Conflict("this user is already a member", code="already_member") from exc
    return membership


def _get_member_or_raise(session: Session, *, org_id: str, user_id: str) -> Membership:
    membership = repository.get_membership(session, org_id=org_id, user_id=user_id)
    if membership is None:
        raise NotFound("member not found")
    return membership


def _ensure_an_owner_remains(session: Session, org_id: str) -> None:
    session.flush()
    if repository.count_owners(session, org_id) < 1:
        session.rollback()
        raise Conflict(
            "an organisation must keep at least one owner; make someone else owner first",
            code="last_owner",
        )


def change_role(
    session: Session, *, access: OrgAccess, user_id: str, role: Role
) -> tuple[Membership, User]:
    _lock_org(session, access.org.id)
    membership = _get_member_or_raise(session, org_id=access.org.id, user_id=user_id)
    old = Role(membership.role)
    _require_role_change(access, old=old, new=role)
    membership.role = role.value
    if old == Role.OWNER:
        _ensure_an_owner_remains(session, access.org.id)
    session.commit()
    user = get_user_or_raise(session, user_id)
    return membership, user


def remove_member(session: Session, *, access: OrgAccess, actor: User, user_id: str) -> None:
    """Remove a member. Anyone may leave; removing others needs the member-managing role."""
    _lock_org(session, access.org.id)
    membership = _get_member_or_raise(session, org_id=access.org.id, user_id=user_id)
    old = Role(membership.role)
    if user_id != actor.id:
        _require_role_change(access, old=old, new=None)
    session.delete(membership)
    if old == Role.OWNER:
        _ensure_an_owner_remains(session, access.org.id)
    session.commit()
