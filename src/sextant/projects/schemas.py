"""Request and response models for projects and API keys."""

from __future__ import annotations

import zoneinfo
from datetime import UTC, datetime
from functools import lru_cache
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from sextant.projects.models import KeyKind

MAX_RETENTION_DAYS = 36_500


@lru_cache(maxsize=1)
def _zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def _check_timezone(value: str) -> str:
    if value in _zones():
        return value
    raise ValueError(
        f"unknown time zone {value!r}; use an IANA name such as 'UTC', 'Europe/Berlin' "
        "or 'America/New_York'"
    )


def _as_utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
TimeZone = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=64),
    AfterValidator(_check_timezone),
    Field(description="IANA time zone name, e.g. Europe/Berlin.", examples=["UTC"]),
]
RetentionDays = Annotated[
    int, Field(ge=1, le=MAX_RETENTION_DAYS, description="How long events are kept, in days.")
]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ProjectCreate(Strict):
    org_id: Annotated[str, Field(min_length=1, max_length=64)]
    name: Name
    timezone: TimeZone = "UTC"
    retention_days: RetentionDays = 365
    store_raw_ip: bool = Field(
        default=False, description="Keep raw IP addresses (default: only a rotating hash)."
    )


class ProjectUpdate(Strict):
    name: Name | None = None
    timezone: TimeZone | None = None
    retention_days: RetentionDays | None = None
    store_raw_ip: bool | None = None


class ProjectRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    org_id: str
    name: str
    timezone: str
    retention_days: int
    store_raw_ip: bool
    created_at: datetime


class ApiKeyCreate(Strict):
    name: Name
    kind: KeyKind
    expires_at: Annotated[datetime, AfterValidator(_as_utc)] | None = Field(
        default=None, description="When the key stops working (ISO 8601; UTC if no offset)."
    )


class ApiKeyRead(BaseModel):
    id: str
    project_id: str
    name: str
    kind: KeyKind
    prefix: str = Field(description="The start of the secret, to recognise the key.")
    status: Annotated[str, Field(description="active, expired or revoked")]
    created_at: datetime
    last_used_at: datetime | None
    expires_at: datetime | None
    revoked_at: datetime | None


class ApiKeyWithSecret(ApiKeyRead):
    secret: str = Field(description="The full key. Shown only now: store it safely.")
