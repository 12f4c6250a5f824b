"""Store health checks for the readiness probe."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sextant.core.db import Database
from sextant.core.eventstore import EventStore
from sextant.core.ratelimit import RateLimiter
from sextant.system.schemas import StoreCheck


def _scheme(url: str) -> str:
    return url.split("://", 1)[0].split("+", 1)[0]


def _check(name: str, backend: str, probe: Callable[[], bool]) -> StoreCheck:
    try:
        ok = probe()
        error = None if ok else "did not answer"
    except Exception as exc:  # a probe reports, it never raises
        ok, error = False, str(exc).split("\n", 1)[0][:300] or type(exc).__name__
    return StoreCheck(name=name, status="ok" if ok else "down", backend=backend, error=error)


def _ping_db(db: Database) -> bool:
    db.ping()
    return True


def check_stores(state: Any) -> list[StoreCheck]:
    """Probe every store this process depends on: control plane, event store, Redis."""
    db: Database = state.db
    events: EventStore = state.events
    limiter: RateLimiter = state.rate_limiter
    checks = [
        _check("database", _scheme(db.url), lambda: _ping_db(db)),
        _check("event_store", "chdb" if events.embedded else _scheme(events.url), events.ping),
    ]
    if limiter.shared:
        checks.append(_check("redis", "redis", limiter.ping))
    return checks
