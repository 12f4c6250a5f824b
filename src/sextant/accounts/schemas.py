"""Request and response models for users, auth and organisations."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, EmailStr, Field, StringConstraints

from sextant.accounts.models import Role

PASSWORD_MIN_LENGTH = 10
PASSWORD_MAX_LENGTH = 128


def _normalise_email(value: str) -> str:
    return value.strip().lower()


def _check_password(value: str) -> str:
    if len(value) < PASSWORD_MIN_LENGTH:
        raise ValueError(f"password must be at least {PASSWORD_MIN_LENGTH} characters long")
    if len(value) > PASSWORD_MAX_LENGTH:
        raise ValueError(f"password must be at most {PASSWORD_MAX_LENGTH} characters long")
    if not value.strip():
        raise ValueError("password must not be only spaces")
    if not any(ch.isalpha() for ch in value) or all(ch.isalpha() for ch in value):
        raise ValueError("password must contain at least one letter and one non-letter")
    return value


Email = Annotated[EmailStr, Field(max_length=320), AfterValidator(_normalise_email)]
NewPassword = Annotated[
    str,
    AfterValidator(_check_password),
    Field(
        description=(
            f"{PASSWORD_MIN_LENGTH}-{PASSWORD_MAX_LENGTH} characters, with at least one letter "
            "and one non-letter."
        ),
        examples=["correct-horse-7"],
    ),
]
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --- users and auth ------------------------------------------------------------------------


class UserRegister(Strict):
    email: Email
    password: NewPassword
    name: Name


class UserCreate(UserRegister):
    """Created by a platform admin."""

    is_admin: bool = False


class UserUpdate(Strict):
    name: Name | None = None


class UserAdminUpdate(Strict):
    name: Name | None = None
    is_active: bool | None = None
    is_admin: bool | None = None


class UserRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    email: str
    name: str
    is_active: bool
    is_admin: bool
    created_at: datetime


class MembershipSummary(BaseModel):
    org_id: str
    org_name: str
    role: Role


class Me(UserRead):
    orgs: list[MembershipSummary]


class LoginRequest(Strict):
    email: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=320)]
    password: Annotated[str, Field(min_length=1, max_length=1024)]


class TokenPair(BaseModel):
    access_token: str
    refresh_token: str
    token_type: str = "bearer"
    expires_in: int = Field(description="Seconds until the access token expires.")


class RefreshRequest(Strict):
    refresh_token: Annotated[str, Field(min_length=1, max_length=256)]


class LogoutRequest(Strict):
    refresh_token: Annotated[str, Field(min_length=1, max_length=256)]
    everywhere: bool = Field(
        default=False, description="Also end every other session of this user."
    )


class PasswordChange(Strict):
    current_password: Annotated[str, Field(min_length=1, max_length=1024)]
    new_password: NewPassword


# --- organisations -------------------------------------------------------------------------


class OrgCreate(Strict):
    name: Name


class OrgUpdate(Strict):
    name: Name


class OrgRead(BaseModel):
    id: str
    name: str
    created_at: datetime
    role: Role = Field(description="Your role in this organisation.")


class MemberAdd(Strict):
    email: Email
    role: Role = Role.MEMBER


class MemberUpdate(Strict):
    role: Role


class MemberRead(BaseModel):
    user_id: str
    email: str
    name: str
    role: Role
    created_at: datetime


# --- the error shape, for the OpenAPI document ------------------------------------------------


class ErrorDetail(BaseModel):
    field: str | None = None
    message: str
    type: str | None = None


class ErrorInfo(BaseModel):
    code: str = Field(examples=["not_found"])
    message: str = Field(examples=["project not found"])
    details: list[ErrorDetail] = Field(default_factory=list)


class ErrorResponse(BaseModel):
    """Every 4xx/5xx answer has this shape."""

    error: ErrorInfo


_ERROR_TEXT = {
    400: "The request breaks a rule (the message says which).",
    401: "Not signed in, or the token/key is invalid, expired or revoked.",
    403: "Signed in, but your role or account does not allow this.",
    404: "Not found, or not visible to you.",
    409: "Conflicts with the current state (duplicate, last owner, revoked key...).",
    422: "Invalid input; `details` names each field.",
    429: "Too many attempts; retry after `Retry-After` seconds.",
}


def error_responses(*codes: int) -> dict[int | str, dict[str, object]]:
    """OpenAPI `responses=` entries documenting the error shape for these status codes."""
    return {code: {"model": ErrorResponse, "description": _ERROR_TEXT[code]} for code in codes}
