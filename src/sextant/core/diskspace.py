"""The event store's free disk space, watched so ingestion stops before the disk is full.

A full disk is the one store failure that does not announce itself: parts that cannot be
written are lost, merges stop, and on some insert paths the engine even reports success.
So ingestion refuses new events (503, `low_disk_space`) while the store's disk has less
free than `ingest_min_free_disk_mb` or is read-only, and takes them again by itself once
space is back. Reads go on: they do not need the disk to grow.

Embedded, the data directory is on this machine: `os.statvfs` costs a microsecond, so the
writer also asks just before every flush. On a server the figures come from
`system.disks` (the disks holding the `events` table) every few seconds.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import structlog
from prometheus_client import Gauge

from sextant.core.errors import ServiceUnavailable
from sextant.core.eventstore import EventStore, EventStoreError, chdb_path

log = structlog.get_logger(__name__)

DISK_FREE = Gauge(
    "sextant_event_store_disk_free_bytes", "Free bytes on the event store's disk (lowest disk)"
)
DISK_MIN_FREE = Gauge(
    "sextant_event_store_disk_min_free_bytes",
    "Free bytes below which ingestion is refused (SEXTANT_INGEST_MIN_FREE_DISK_MB)",
)
INGEST_REFUSED = Gauge(
    "sextant_ingest_refused",
    "1 while ingestion is refused because of the event store's disk, by reason",
    ["reason"],
)
REASONS = ("low_disk_space", "read_only", "unknown")


class LowDiskSpace(ServiceUnavailable):
    """Ingestion is paused: the event store's disk is (nearly) full or read-only."""

    code = "low_disk_space"


@dataclass(frozen=True, slots=True)
class DiskState:
    """One reading of the store's disk."""

    path: str
    free_bytes: int
    total_bytes: int
    min_free_bytes: int
    read_only: bool = False
    # Set when the figures could not be read (the reading then does not stop ingestion:
    # the store's own errors still fail the flush).
    error: str | None = None
    checked_at: float = 0.0

    @property
    def reason(self) -> str | None:
        """Why ingestion is refused, or None when it is not."""
        if self.error is not None:
            return None
        if self.read_only:
            return "read_only"
        if self.free_bytes < self.min_free_bytes:
            return "low_disk_space"
        return None

    @property
    def ok(self) -> bool:
        return self.reason is None

    def message(self) -> str:
        if self.read_only:
            return (
                f"the event store's disk ({self.path}) is read-only; ingestion resumes when "
                "it is writable again"
            )
        return (
            f"the event store's disk ({self.path}) has {_mb(self.free_bytes)} free, below "
            f"the {_mb(self.min_free_bytes)} that SEXTANT_INGEST_MIN_FREE_DISK_MB keeps free; "
            "events are refused until space is freed, then accepted again by themselves"
        )


def _mb(value: int) -> str:
    return f"{value / 1_048_576:,.1f} MB"


class DiskGuard:
    """The latest reading of the store's disk, refreshed by a background thread."""

    def __init__(
        self,
        store: EventStore,
        *,
        min_free_bytes: int,
        interval_seconds: float = 2.0,
        path: Path | None = None,
    ) -> None:
        """`path`: the directory to watch; by default an embedded store's own, and None
        (the server's `system.disks`) for a server."""
        self.store = store
        self.min_free_bytes = min_free_bytes
        self.interval = interval_seconds
        self._path = path or (chdb_path(store.url) if store.embedded else None)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.state = DiskState(path="", free_bytes=0, total_bytes=0, min_free_bytes=0)
        DISK_MIN_FREE.set(min_free_bytes)
        self.check()

    @property
    def accepting(self) -> bool:
        """Whether events may be buffered now (the last reading; no I/O)."""
        return self.state.ok

    def refuse_error(self) -> LowDiskSpace:
        return LowDiskSpace(self.state.message(), retry_after=max(5, round(self.interval * 5)))

    def check(self) -> DiskState:
        """Read the disk now, record it (metrics, a log line on every change) and return it."""
        state = self._read_local(self._path) if self._path else self._read_server()
        with self._lock:
            before, self.state = self.state, state
        if state.error is None:
            DISK_FREE.set(state.free_bytes)
        for reason in REASONS:
            INGEST_REFUSED.labels(reason).set(1 if state.reason == reason else 0)
        if before.reason != state.reason and before.checked_at:
            if state.reason:
                log.warning(
                    "ingest_refused",
                    reason=state.reason,
                    path=state.path,
                    free_bytes=state.free_bytes,
                    min_free_bytes=state.min_free_bytes,
                    message=state.message(),
                )
            else:  # a warning as well: it closes the warning above
                log.warning(
                    "ingest_resumed",
                    path=state.path,
                    free_bytes=state.free_bytes,
                    min_free_bytes=state.min_free_bytes,
                )
        if state.error and not before.error:
            log.warning("disk_space_unreadable", path=state.path, error=state.error)
        return state

    def check_before_write(self) -> None:
        """Raise `LowDiskSpace` unless the store may be written now. Embedded, this reads
        the disk afresh (a microsecond); on a server it trusts the background reading."""
        state = self.check() if self._path else self.state
        if not state.ok:
            raise self.refuse_error()

    def _read_local(self, path: Path) -> DiskState:
        now = time.monotonic()
        try:
            stat = os.statvfs(path)
        except OSError as exc:
            return DiskState(str(path), 0, 0, self.min_free_bytes, error=str(exc), checked_at=now)
        return DiskState(
            path=str(path),
            free_bytes=stat.f_bavail * stat.f_frsize,
            total_bytes=stat.f_blocks * stat.f_frsize,
            min_free_bytes=self.min_free_bytes,
            read_only=bool(stat.f_flag & os.ST_RDONLY),
            checked_at=now,
        )

    def _read_server(self) -> DiskState:
        now = time.monotonic()
        try:
            # The disks that hold the events table (several with a storage policy): the
            # fullest one decides. `unreserved_space` leaves out what merges reserved.
            rows = self.store.query(
                "SELECT d.name, d.path, d.unreserved_space, d.total_space, d.is_read_only "
                "FROM system.disks AS d WHERE arrayExists(p -> startsWith(p, d.path), "
                "(SELECT any(data_paths) FROM system.tables WHERE database = "
                "currentDatabase() AND name = 'events')) ORDER BY d.unreserved_space LIMIT 1",
                connection="disk-guard",
            ).rows
        except EventStoreError as exc:
            return DiskState(
                self.store.url, 0, 0, self.min_free_bytes, error=str(exc), checked_at=now
            )
        if not rows:
            return DiskState(
                self.store.url, 0, 0, self.min_free_bytes, error="no disk found", checked_at=now
            )
        name, path, free, total, read_only = rows[0]
        return DiskState(
            path=f"{name}:{path}",
            free_bytes=int(free),
            total_bytes=int(total),
            min_free_bytes=self.min_free_bytes,
            read_only=bool(read_only),
            checked_at=now,
        )

    # -- background --------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(
                target=self._run, name="sextant-disk-guard", daemon=True
            )
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.check()
            except Exception as exc:  # the watcher must outlive one bad reading
                log.exception("disk_guard_failed", error=repr(exc))
