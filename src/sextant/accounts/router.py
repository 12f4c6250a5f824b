"""HTTP endpoints for auth, users and organisations. Thin: validate, call the service, shape."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Query, Response, status

from sextant.accounts import service
from sextant.accounts.dependencies import (
    AdminUserDep,
    ClientIpDep,
    CurrentUserDep,
    get_current_user,
)
from sextant.accounts.models import Membership, Role, User
from sextant.accounts.schemas import (
    LoginRequest,
    LogoutRequest,
    Me,
    MemberAdd,
    MemberRead,
    MemberUpdate,
    OrgCreate,
    OrgRead,
    OrgUpdate,
    PasswordChange,
    RefreshRequest,
    TokenPair,
    UserAdminUpdate,
    UserCreate,
    UserRead,
    UserRegister,
    UserUpdate,
    error_responses,
)
from sextant.core.deps import EventStoreDep, RateLimiterDep, SessionDep, SettingsDep
from sextant.governance.service import purge_projects
from sextant.projects.dependencies import KeyResolverDep

auth_router = APIRouter(
    prefix="/api/v1/auth", tags=["auth"], responses=error_responses(400, 401, 403, 422, 429)
)
users_router = APIRouter(
    prefix="/api/v1/users",
    tags=["users"],
    dependencies=[Depends(get_current_user)],
    responses=error_responses(401, 403, 404, 409, 422),
)
orgs_router = APIRouter(
    prefix="/api/v1/orgs",
    tags=["organisations"],
    dependencies=[Depends(get_current_user)],
    responses=error_responses(401, 403, 404, 409, 422),
)


def _me(session: SessionDep, user: User) -> Me:
    return Me(
        **UserRead.model_validate(user).model_dump(), orgs=service.memberships_of(session, user)
    )


def _org_read(access: service.OrgAccess) -> OrgRead:
    org = access.org
    return OrgRead(id=org.id, name=org.name, created_at=org.created_at, role=access.role)


def _member_read(membership: Membership, user: User) -> MemberRead:
    return MemberRead(
        user_id=user.id,
        email=user.email,
        name=user.name,
        role=Role(membership.role),
        created_at=membership.created_at,
    )


# --- auth (public routes are the exception: register, login, token, refresh, logout) --------


@auth_router.post("/register", status_code=status.HTTP_201_CREATED)
def register(body: UserRegister, session: SessionDep, settings: SettingsDep) -> UserRead:
    """Create an account (unless registration is disabled on this server)."""
    user = service.register(
        session, settings=settings, email=body.email, password=body.password, name=body.name
    )
    return UserRead.model_validate(user)


@auth_router.post("/login")
def login(
    body: LoginRequest,
    session: SessionDep,
    settings: SettingsDep,
    limiter: RateLimiterDep,
    ip: ClientIpDep,
) -> TokenPair:
    """Sign in with email and password; returns an access token and a refresh token.

    Repeated failures for one account or one address answer 429 with `Retry-After`.
    """
    user = service.authenticate(
        session, settings=settings, limiter=limiter, email=body.email, password=body.password, ip=ip
    )
    return service.issue_tokens(session, settings=settings, user=user)


@auth_router.post("/token")
def token(
    username: Annotated[str, Form(max_length=320, description="Your email.")],
    password: Annotated[str, Form(max_length=1024)],
    session: SessionDep,
    settings: SettingsDep,
    limiter: RateLimiterDep,
    ip: ClientIpDep,
) -> TokenPair:
    """Sign in with an OAuth2 password form (what the Authorize button in /docs uses)."""
    user = service.authenticate(
        session, settings=settings, limiter=limiter, email=username, password=password, ip=ip
    )
    return service.issue_tokens(session, settings=settings, user=user)


@auth_router.post("/refresh")
def refresh(body: RefreshRequest, session: SessionDep, settings: SettingsDep) -> TokenPair:
    """Exchange a refresh token for a new pair. Each refresh token works once.

    Presenting an already-used refresh token revokes that whole session.
    """
    return service.refresh(session, settings=settings, token=body.refresh_token)


@auth_router.post("/logout", status_code=status.HTTP_204_NO_CONTENT)
def logout(body: LogoutRequest, session: SessionDep) -> Response:
    """End the session this refresh token belongs to (or, with `everywhere`, all sessions).

    Access tokens already issued stay valid until they expire (minutes).
    """
    service.logout(session, token=body.refresh_token, everywhere=body.everywhere)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@auth_router.get("/me")
def me(user: CurrentUserDep, session: SessionDep) -> Me:
    """Who am I, and in which organisations with which role."""
    return _me(session, user)


@auth_router.patch("/me")
def update_me(body: UserUpdate, user: CurrentUserDep, session: SessionDep) -> Me:
    """Change my display name."""
    service.update_user(session, user, name=body.name)
    return _me(session, user)


@auth_router.post("/password")
def change_password(
    body: PasswordChange,
    user: CurrentUserDep,
    session: SessionDep,
    settings: SettingsDep,
    limiter: RateLimiterDep,
    ip: ClientIpDep,
) -> TokenPair:
    """Change my password. Every other session and access token stops working at once;
    the response carries a fresh pair for this client."""
    return service.change_password(
        session,
        settings=settings,
        limiter=limiter,
        user=user,
        current_password=body.current_password,
        new_password=body.new_password,
        ip=ip,
    )


# --- users (platform administrators) ---------------------------------------------------------


@users_router.post("", status_code=status.HTTP_201_CREATED)
def create_user(
    body: UserCreate, _: AdminUserDep, session: SessionDep, settings: SettingsDep
) -> UserRead:
    """Create a user (platform admins only; works when registration is disabled)."""
    user = service.create_user(
        session,
        settings=settings,
        email=body.email,
        password=body.password,
        name=body.name,
        is_admin=body.is_admin,
    )
    return UserRead.model_validate(user)


@users_router.get("")
def list_users(
    _: AdminUserDep,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> list[UserRead]:
    """List users (platform admins only)."""
    users = service.list_users(session, limit=limit, offset=offset)
    return [UserRead.model_validate(u) for u in users]


@users_router.patch("/{user_id}")
def update_user(
    user_id: str, body: UserAdminUpdate, admin: AdminUserDep, session: SessionDep
) -> UserRead:
    """Rename, deactivate/reactivate or (un)make admin (platform admins only).

    Deactivating ends the user's sessions.
    """
    user = service.admin_update_user(
        session,
        admin=admin,
        user_id=user_id,
        name=body.name,
        is_active=body.is_active,
        is_admin=body.is_admin,
    )
    return UserRead.model_validate(user)


# --- organisations ---------------------------------------------------------------------------


@orgs_router.post("", status_code=status.HTTP_201_CREATED)
def create_org(body: OrgCreate, user: CurrentUserDep, session: SessionDep) -> OrgRead:
    """Create an organisation; you become its owner."""
    return _org_read(service.create_org(session, user=user, name=body.name))


@orgs_router.get("")
def list_orgs(user: CurrentUserDep, session: SessionDep) -> list[OrgRead]:
    """The organisations I belong to, with my role in each."""
    return [_org_read(access) for access in service.list_orgs(session, user=user)]


@orgs_router.get("/{org_id}")
def get_org(org_id: str, user: CurrentUserDep, session: SessionDep) -> OrgRead:
    """One organisation I belong to."""
    return _org_read(service.get_org_access(session, user=user, org_id=org_id))


@orgs_router.patch("/{org_id}")
def update_org(org_id: str, body: OrgUpdate, user: CurrentUserDep, session: SessionDep) -> OrgRead:
    """Rename an organisation (owner, admin)."""
    access = service.get_org_access(session, user=user, org_id=org_id)
    return _org_read(service.rename_org(session, access=access, name=body.name))


@orgs_router.delete("/{org_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_org(
    org_id: str,
    user: CurrentUserDep,
    session: SessionDep,
    store: EventStoreDep,
    resolver: KeyResolverDep,
) -> Response:
    """Delete an organisation with all its projects, keys and events (owner only)."""
    access = service.get_org_access(session, user=user, org_id=org_id)
    project_ids = service.delete_org(session, access=access)
    for project_id in project_ids:
        resolver.invalidate_project(project_id)
    purge_projects(store, project_ids)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@orgs_router.get("/{org_id}/members")
def list_members(org_id: str, user: CurrentUserDep, session: SessionDep) -> list[MemberRead]:
    """Members of an organisation and their roles."""
    access = service.get_org_access(session, user=user, org_id=org_id)
    return [_member_read(m, u) for m, u in service.list_members(session, access=access)]


@orgs_router.post("/{org_id}/members", status_code=status.HTTP_201_CREATED)
def add_member(
    org_id: str, body: MemberAdd, user: CurrentUserDep, session: SessionDep
) -> MemberRead:
    """Add a registered user by email with a role (owner, admin; only owners grant owner)."""
    access = service.get_org_access(session, user=user, org_id=org_id)
    membership = service.add_member(session, access=access, email=body.email, role=body.role)
    return _member_read(membership, service.get_user_or_raise(session, membership.user_id))


@orgs_router.patch("/{org_id}/members/{user_id}")
def change_member_role(
    org_id: str, user_id: str, body: MemberUpdate, user: CurrentUserDep, session: SessionDep
) -> MemberRead:
    """Change a member's role. An organisation always keeps at least one owner."""
    access = service.get_org_access(session, user=user, org_id=org_id)
    membership, member = service.change_role(
        session, access=access, user_id=user_id, role=body.role
    )
    return _member_read(membership, member)


@orgs_router.delete("/{org_id}/members/{user_id}", status_code=status.HTTP_204_NO_CONTENT)
def remove_member(org_id: str, user_id: str, user: CurrentUserDep, session: SessionDep) -> Response:
    """Remove a member (owner, admin), or leave the organisation yourself."""
    access = service.get_org_access(session, user=user, org_id=org_id)
    service.remove_member(session, access=access, actor=user, user_id=user_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


router = APIRouter()
router.include_router(auth_router)
router.include_router(users_router)
router.include_router(orgs_router)
