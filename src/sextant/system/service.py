"""Store health checks for the readiness probe."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from sextant.core.db import Database
from sextant.core.diskspace import DiskGuard
from sextant.core.eventstore import EventStore
from sextant.core.ratelimit import RateLimiter
from sextant.ingest.writer import Writer
from sextant.system.schemas import DiskReading, StoreCheck


def _scheme(url: str) -> str:
    return url.split("://", 1)[0].split("+", 1)[0]


def _check(name: str, backend: str, probe: Callable[[], bool]) -> StoreCheck:
    try:
        ok = probe()
        error = None if ok else "did not answer"
    except Exception as exc:  # a probe reports, it never raises
        ok, error = False, str(exc).split("\n", 1)[0][:300] or type(exc).__name__
    return StoreCheck(name=name, status="ok" if ok else "down", backend=backend, error=error)


def _with_disk(check: StoreCheck, guard: DiskGuard) -> StoreCheck:
    """The event store's check: degraded while ingestion is refused for its disk."""
    disk = guard.state
    if check.status == "ok" and not disk.ok:
        return check.model_copy(update={"status": "degraded", "error": disk.message()})
    return check


def _with_writes(check: StoreCheck, writer: Writer) -> StoreCheck:
    """The event store's check: degraded while its flushes fail (the store answers reads
    but refuses writes: a read-only directory, a broken disk)."""
    since = writer.stats.failing_since
    if check.status != "ok" or since is None:
        return check
    moment = dt.datetime.fromtimestamp(since, dt.UTC).isoformat(timespec="seconds")
    return check.model_copy(
        update={
            "status": "degraded",
            "error": f"writes have failed since {moment}: {writer.stats.last_error[:300]}",
        }
    )


def disk_reading(state: Any) -> DiskReading | None:
    """The event store's disk as the guard last read it (None without a reading)."""
    guard: DiskGuard | None = getattr(state, "disk_guard", None)
    if guard is None or guard.state.error is not None:
        return None
    disk = guard.state
    return DiskReading(
        path=disk.path,
        free_bytes=disk.free_bytes,
        total_bytes=disk.total_bytes,
        min_free_bytes=disk.min_free_bytes,
        read_only=disk.read_only,
        accepting_events=disk.ok,
    )


def _ping_db(db: Database) -> bool:
    db.ping()
    return True


def check_stores(state: Any) -> list[StoreCheck]:
    """Probe every store this process depends on: control plane, event store, Redis."""
    db: Database = state.db
    events: EventStore = state.events
    limiter: RateLimiter = state.rate_limiter
    store = _check("event_store", "chdb" if events.embedded else _scheme(events.url), events.ping)
    guard: DiskGuard | None = getattr(state, "disk_guard", None)
    if guard is not None:
        store = _with_disk(store, guard)
    writer: Writer | None = getattr(state, "ingest_writer", None)
    if writer is not None:
        store = _with_writes(store, writer)
    checks = [_check("database", _scheme(db.url), lambda: _ping_db(db)), store]
    if limiter.shared:
        checks.append(_check("redis", "redis", limiter.ping))
    return checks
