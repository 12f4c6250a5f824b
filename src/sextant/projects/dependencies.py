"""Resolve API keys and access tokens to a project, for the ingest and query paths.

`KeyResolver` finds a key by its visible prefix (one indexed lookup), compares the SHA-256 of
the whole secret, and keeps the answer for a few seconds so hot paths rarely touch the
control-plane database. Revoking or rotating in this process drops the cached entry at once;
other processes see it when their entry expires (`SEXTANT_API_KEY_CACHE_SECONDS`).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated

import structlog
from fastapi import Depends, Request
from fastapi.security import APIKeyHeader

from sextant.accounts import service as accounts_service
from sextant.accounts.dependencies import bearer_token, oauth2_scheme
from sextant.accounts.permissions import Permission, can
from sextant.config import Settings
from sextant.core.db import Database, utcnow
from sextant.core.errors import NotFound, Unauthorized
from sextant.core.security import hash_token, tokens_equal
from sextant.projects import repository
from sextant.projects.context import ProjectContext
from sextant.projects.models import ApiKey, KeyKind, Project

log = structlog.get_logger("sextant.keys")

KEY_PREFIXES = {KeyKind.WRITE: "sx_w_", KeyKind.READ: "sx_r_"}
KEY_RANDOM_LENGTH = 40
KEY_PREFIX_LENGTH = 5 + 12  # "sx_w_" and 12 random characters: shown in lists, indexed
KEY_LENGTH = 5 + KEY_RANDOM_LENGTH


def key_kind_of(secret: str) -> KeyKind | None:
    for kind, prefix in KEY_PREFIXES.items():
        if secret.startswith(prefix):
            return kind
    return None


def key_prefix_of(secret: str) -> str:
    return secret[:KEY_PREFIX_LENGTH]


def project_context(project: Project, **extra: str | None) -> ProjectContext:
    return ProjectContext(
        project_id=project.id,
        org_id=project.org_id,
        name=project.name,
        timezone=project.timezone,
        retention_days=project.retention_days,
        store_raw_ip=project.store_raw_ip,
        **extra,
    )


@dataclass(frozen=True, slots=True)
class _Entry:
    loaded_at: float
    key_id: str | None = None  # None: no key has this prefix
    secret_hash: str = ""
    expires_at: datetime | None = None
    revoked: bool = False
    context: ProjectContext | None = None


_INVALID = "invalid API key"


class KeyResolver:
    """Secret -> ProjectContext, in O(1) lookups with a short in-process cache."""

    def __init__(
        self,
        db: Database,
        *,
        cache_seconds: float = 5.0,
        touch_interval_seconds: float = 60.0,
        max_entries: int = 100_000,
    ) -> None:
        self._db = db
        self._ttl = cache_seconds
        self._touch_interval = touch_interval_seconds
        self._max_entries = max_entries
        self._cache: dict[str, _Entry] = {}
        self._touched: dict[str, float] = {}
        self._lock = threading.Lock()

    def resolve(self, secret: str, kind: KeyKind) -> ProjectContext:
        """The project a key belongs to; 401 saying why when the key cannot be used."""
        secret = secret.strip()
        actual = key_kind_of(secret)
        if actual is None or len(secret) != KEY_LENGTH:
            raise Unauthorized(_INVALID, code="invalid_api_key")
        if actual != kind:
            wanted = KEY_PREFIXES[kind]
            raise Unauthorized(
                f"this is a {actual.value} key; this endpoint needs a {kind.value} key "
                f"({wanted}...)",
                code="wrong_key_kind",
            )
        entry = self._entry(key_prefix_of(secret))
        if (
            entry.key_id is None
            or entry.context is None
            or not tokens_equal(entry.secret_hash, hash_token(secret))
        ):
            raise Unauthorized(_INVALID, code="invalid_api_key")
        if entry.revoked:
            raise Unauthorized("API key revoked", code="api_key_revoked")
        if entry.expires_at is not None and entry.expires_at <= utcnow():
            raise Unauthorized("API key expired", code="api_key_expired")
        self._touch(entry.key_id)
        return entry.context

    def invalidate_key(self, prefix: str) -> None:
        with self._lock:
            self._cache.pop(prefix, None)

    def invalidate_project(self, project_id: str) -> None:
        with self._lock:
            stale = [
                prefix
                for prefix, entry in self._cache.items()
                if entry.context is not None and entry.context.project_id == project_id
            ]
            for prefix in stale:
                del self._cache[prefix]

    def clear(self) -> None:
        with self._lock:
            self._cache.clear()

    def _entry(self, prefix: str) -> _Entry:
        now = time.monotonic()
        entry = self._cache.get(prefix)
        if entry is not None and now - entry.loaded_at < self._ttl:
            return entry
        entry = self._load(prefix, now)
        with self._lock:
            if len(self._cache) >= self._max_entries:
                self._cache.clear()
            self._cache[prefix] = entry
        return entry

    def _load(self, prefix: str, now: float) -> _Entry:
        with self._db.session() as session:
            found = repository.get_key_with_project_by_prefix(session, prefix)
            if found is None:
                return _Entry(loaded_at=now)
            key, project = found
            return _entry_for(key, project, now)

    def _touch(self, key_id: str) -> None:
        now = time.monotonic()
        last = self._touched.get(key_id)
        if last is not None and now - last < self._touch_interval:
            return
        self._touched[key_id] = now
        try:
            with self._db.session() as session:
                repository.touch_key(session, key_id, utcnow())
                session.commit()
        except Exception as exc:  # bookkeeping only: never fail a request over it
            log.warning("api_key_touch_failed", key_id=key_id, error=repr(exc))


def _entry_for(key: ApiKey, project: Project, now: float) -> _Entry:
    return _Entry(
        loaded_at=now,
        key_id=key.id,
        secret_hash=key.secret_hash,
        expires_at=key.expires_at,
        revoked=key.revoked_at is not None,
        context=project_context(project, key_id=key.id),
    )


def build_key_resolver(db: Database, settings: Settings) -> KeyResolver:
    return KeyResolver(db, cache_seconds=settings.api_key_cache_seconds)


def get_key_resolver(request: Request) -> KeyResolver:
    resolver: KeyResolver = request.app.state.key_resolver
    return resolver


KeyResolverDep = Annotated[KeyResolver, Depends(get_key_resolver)]

api_key_header = APIKeyHeader(
    name="X-API-Key",
    auto_error=False,
    description="A read key (`sx_r_...`). `Authorization: Bearer sx_r_...` works too.",
)


def get_project_read(
    request: Request,
    project_id: str,
    api_key: Annotated[str | None, Depends(api_key_header)],
    _token: Annotated[str | None, Depends(oauth2_scheme)],
) -> ProjectContext:
    """Who may read this project's analytics: its read key, or a member whose role reads."""
    credential = api_key or bearer_token(request)
    if not credential:
        raise Unauthorized(
            "authentication required: send a read key in `X-API-Key` "
            "or `Authorization: Bearer <access token>`",
            headers={"WWW-Authenticate": "Bearer"},
        )
    if key_kind_of(credential) is not None:
        context = get_key_resolver(request).resolve(credential, KeyKind.READ)
        if context.project_id != project_id:
            raise NotFound("project not found")
        return context
    db: Database = request.app.state.db
    settings: Settings = request.app.state.settings
    with db.session() as session:
        user = accounts_service.user_from_access_token(session, settings=settings, token=credential)
        found = repository.get_project_with_role(session, project_id=project_id, user_id=user.id)
        if found is None:
            raise NotFound("project not found")
        project, role = found
        if not can(role, Permission.READ_ANALYTICS):  # every role reads today; keep the check
            raise NotFound("project not found")
        return project_context(project, user_id=user.id, role=role)


ProjectReadDep = Annotated[ProjectContext, Depends(get_project_read)]
