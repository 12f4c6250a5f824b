"""Who is calling: the signed-in user behind a bearer access token."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import OAuth2PasswordBearer

from sextant.accounts import service
from sextant.accounts.models import User
from sextant.core.deps import SessionDep, SettingsDep
from sextant.core.errors import Forbidden, Unauthorized
from sextant.core.security import client_ip

TOKEN_URL = "/api/v1/auth/token"
API_KEY_PREFIX = "sx_"

oauth2_scheme = OAuth2PasswordBearer(
    tokenUrl=TOKEN_URL,
    auto_error=False,
    description="Sign in with your email (as username) and password.",
)


def bearer_token(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return None


def get_current_user(
    session: SessionDep,
    settings: SettingsDep,
    token: Annotated[str | None, Depends(oauth2_scheme)],
) -> User:
    if not token:
        raise Unauthorized(
            "sign in required: send `Authorization: Bearer <access token>`",
            headers={"WWW-Authenticate": "Bearer"},
        )
    if token.startswith(API_KEY_PREFIX):
        raise Unauthorized(
            "API keys cannot be used here; sign in and send an access token",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return service.user_from_access_token(session, settings=settings, token=token)


CurrentUserDep = Annotated[User, Depends(get_current_user)]


def get_admin_user(user: CurrentUserDep) -> User:
    if not user.is_admin:
        raise Forbidden("only a platform administrator may do this", code="admin_required")
    return user


AdminUserDep = Annotated[User, Depends(get_admin_user)]


def get_client_ip(request: Request, settings: SettingsDep) -> str:
    peer = request.client.host if request.client else None
    return client_ip(peer, request.headers.get("x-forwarded-for"), settings.trusted_proxies)


ClientIpDep = Annotated[str, Depends(get_client_ip)]
