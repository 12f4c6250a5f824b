"""Request dependencies for shared plumbing, as `Annotated` aliases."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from sextant.config import Settings
from sextant.core.db import Database
from sextant.core.eventstore import EventStore
from sextant.core.ratelimit import RateLimiter


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_database(request: Request) -> Database:
    db: Database = request.app.state.db
    return db


def get_session(request: Request) -> Iterator[Session]:
    db: Database = request.app.state.db
    with db.session() as session:
        yield session


def get_event_store(request: Request) -> EventStore:
    store: EventStore = request.app.state.events
    return store


def get_rate_limiter(request: Request) -> RateLimiter:
    limiter: RateLimiter = request.app.state.rate_limiter
    return limiter


SettingsDep = Annotated[Settings, Depends(get_settings)]
DatabaseDep = Annotated[Database, Depends(get_database)]
SessionDep = Annotated[Session, Depends(get_session)]
EventStoreDep = Annotated[EventStore, Depends(get_event_store)]
RateLimiterDep = Annotated[RateLimiter, Depends(get_rate_limiter)]
