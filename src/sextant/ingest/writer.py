"""Group commit: requests' events wait in a bounded buffer and are stored in large blocks.

A request hands its rows to `Writer.write` and awaits a future that resolves only after the
block holding them was inserted (so a 2xx means the rows are in the store's files and
survive the process being killed; with `ingest_fsync` they are fsynced too). The buffer is
flushed when it holds `flush_max_events` events or `flush_interval_ms` after its first
event arrived, whichever comes first. One flush runs at a time, in a dedicated thread,
because store calls block; requests keep arriving meanwhile and form the next block.

With `min_spacing_ms` set (what the app does) this is real group commit: the buffer is
flushed as soon as the previous flush finished and `min_spacing_ms` passed since it
started, so an idle server answers at once and a busy one inserts one block per flush
time; the interval only caps the wait. The spacing bounds inserts (ClickHouse makes one
part per insert) to `1000 / min_spacing_ms` per second.

Requests hand over their events as an `EventBlock` (columns, see `block.py`); a flush turns
the blocks of all its requests into one Arrow table and inserts that.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import orjson
import structlog
from prometheus_client import Counter, Gauge, Histogram

from sextant.core.diskspace import DiskGuard, LowDiskSpace
from sextant.core.errors import AppError, ServiceUnavailable
from sextant.core.eventstore import EventStore
from sextant.ingest.block import EventBlock, build_table
from sextant.ingest.event import Row, format_ms

log = structlog.get_logger(__name__)

EVENTS_WRITTEN = Counter("sextant_ingest_events_written_total", "Events stored")
EVENTS_SKIPPED = Counter(
    "sextant_ingest_events_duplicate_total", "Retried events skipped (message id already stored)"
)
FLUSHES = Counter("sextant_ingest_flushes_total", "Group-commit flushes", ["outcome"])
FLUSH_SECONDS = Histogram(
    "sextant_ingest_flush_duration_seconds",
    "Time to insert one group-commit block",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0),
)
BUFFERED = Gauge("sextant_ingest_buffered_events", "Events waiting for the next flush")

_EVENT_SETTINGS: dict[str, Any] = {
    # ReplacingMergeTree would otherwise sort-and-collapse every block at insert; duplicates
    # are removed in Python before the insert and by FINAL at read time, so skip it (~50%).
    "optimize_on_insert": 0,
    # An insert returns once its rows are in parts, whatever a server's profile says:
    # an asynchronous insert that does not wait, or a Distributed table's background
    # queue, would acknowledge rows that a restart can still lose.
    "async_insert": 0,
    "insert_distributed_sync": 1,
}
# The (few, small) person links still go as JSONEachRow.
_ALIAS_SETTINGS: dict[str, Any] = {
    **_EVENT_SETTINGS,
    "input_format_parallel_parsing": 0,
    "input_format_skip_unknown_fields": 0,
    "date_time_input_format": "basic",
}


class StoreWriteFailed(ServiceUnavailable):
    """A flush the event store refused or could not confirm: nothing was acknowledged."""

    code = "store_write_failed"


@dataclass(slots=True)
class _Pending:
    block: EventBlock
    aliases: list[tuple[str, str, str]]
    future: asyncio.Future[None]
    events: int = 0
    received_ms: int = 0


@dataclass(slots=True)
class WriteResult:
    written: int
    duplicates: int


class _RecentSet:
    """A bounded set that forgets the oldest entries first, in generations.

    Two plain sets: new keys go into the young one; when it holds `size // 2` keys the old
    generation is dropped and the young one becomes old. Membership and insertion are one
    set operation each (no per-key eviction), and at least the last `size // 2` keys are
    always remembered.
    """

    def __init__(self, size: int) -> None:
        self.half = max(1, size // 2)
        self._young: set[Any] = set()
        self._old: set[Any] = set()

    def __contains__(self, key: object) -> bool:
        return key in self._young or key in self._old

    def isdisjoint(self, keys: list[Any]) -> bool:
        """True when none of `keys` is remembered (two C-level set checks)."""
        return self._young.isdisjoint(keys) and self._old.isdisjoint(keys)

    def add(self, key: Any) -> None:
        self._young.add(key)
        if len(self._young) >= self.half:
            self._old = self._young
            self._young = set()

    def update(self, keys: set[Any]) -> None:
        young = self._young
        if len(young) + len(keys) < self.half:
            young |= keys
            return
        for key in keys:
            self.add(key)

    def __len__(self) -> int:
        return len(self._young | self._old)


@dataclass(slots=True)
class WriterStats:
    flushes: int = 0
    failed_flushes: int = 0
    written: int = 0
    duplicates: int = 0
    last_error: str = ""
    # When flushes started failing (time.time()), None once one succeeds again.
    failing_since: float | None = None
    flush_sizes: list[int] = field(default_factory=list)


def _person_of(
    start: str, linking: str, new: dict[str, tuple[str, int]], stored: dict[str, str]
) -> str | None:
    """Where the id `start` leads through the links (this flush's first, then the stored
    ones); None when it leads back to `linking`, the id being linked."""
    seen = {linking}
    current = start
    while current not in seen:
        seen.add(current)
        step = new[current][0] if current in new else stored.get(current)
        if step is None or step == current:
            return current
        current = step
    return None


class Writer:
    """The process's group-commit writer for `events` and `person_aliases`."""

    def __init__(
        self,
        store: EventStore,
        *,
        flush_interval_ms: int,
        flush_max_events: int,
        buffer_max_events: int,
        min_spacing_ms: int | None = None,
        recent_ids: int = 500_000,
        disk: DiskGuard | None = None,
    ) -> None:
        self.store = store
        # None: no free-space guard (the store's own errors still fail a flush).
        self.disk = disk
        self.flush_interval = flush_interval_ms / 1000
        # None: flush only on the interval or a full block; a number: as soon as idle.
        self.min_spacing = None if min_spacing_ms is None else min_spacing_ms / 1000
        self._last_flush = -1e9
        self.flush_max_events = flush_max_events
        self.buffer_max_events = buffer_max_events
        self._pending: list[_Pending] = []
        self._pending_events = 0
        self._first_at = 0.0
        self._kick = asyncio.Event()
        self._closing = False
        self._task: asyncio.Task[None] | None = None
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="sextant-writer")
        # (project, message id) of events already stored by this process: a retry is
        # acknowledged without a second insert. FINAL covers what this cache forgets.
        self._recent = _RecentSet(recent_ids)
        self._aliases_written = _RecentSet(100_000)
        self.stats = WriterStats()

    # -- lifecycle ----------------------------------------------------------------------

    def start(self) -> None:
        if self._task is None:
            # Read when scraped, so the hot path does not update a metric per request.
            BUFFERED.set_function(lambda: self._pending_events)
            self._task = asyncio.get_running_loop().create_task(self._run(), name="ingest-writer")

    async def close(self) -> None:
        """Stop accepting events, flush everything buffered, and stop the flusher."""
        self._closing = True
        self._kick.set()
        if self._task is not None:
            await self._task
            self._task = None
        self._executor.shutdown(wait=True)

    @property
    def buffered(self) -> int:
        return self._pending_events

    # -- writing ------------------------------------------------------------------------

    async def write(
        self,
        project_id: str,
        rows: EventBlock | Sequence[Row],
        aliases: Sequence[tuple[str, str]] = (),
        *,
        received_ms: int | None = None,
    ) -> WriteResult:
        """Buffer the events and return once they are stored; 503 when the buffer is full.

        `rows` is a request's `EventBlock`, or normalised rows (each with its message id).
        """
        if self._closing:
            raise ServiceUnavailable("the server is shutting down; retry shortly", retry_after=2)
        if self.disk is not None and not self.disk.accepting:
            raise self.disk.refuse_error()
        now_ms = received_ms if received_ms is not None else int(time.time() * 1000)
        block = (
            rows if isinstance(rows, EventBlock) else EventBlock.from_rows(project_id, rows, now_ms)
        )
        recent = self._recent
        duplicates = 0
        if block.keys and not recent.isdisjoint(block.keys):
            # A retry: drop what is stored already, one by one.
            stored = {
                position
                for key, position in zip(block.keys, block.key_positions, strict=True)
                if key in recent
            }
            duplicates = len(stored)
            block.without(stored)
        links = [
            (project_id, distinct_id, person_id)
            for distinct_id, person_id in aliases
            if (project_id, distinct_id, person_id) not in self._aliases_written
        ]
        if duplicates:
            EVENTS_SKIPPED.inc(duplicates)
            self.stats.duplicates += duplicates
        count = len(block)
        if not count and not links:
            return WriteResult(0, duplicates)
        if self._pending_events + count > self.buffer_max_events:
            raise ServiceUnavailable(
                "the ingest buffer is full; retry shortly",
                retry_after=max(1, round(self.flush_interval * 2)),
            )
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append(_Pending(block, links, future, count, now_ms))
        if self._pending_events == 0:
            self._first_at = time.monotonic()
            self._kick.set()
        self._pending_events += count
        if self._pending_events >= self.flush_max_events:
            self._kick.set()
        # A client that disconnects cancels only this future: its rows stay in the block.
        await future
        return WriteResult(count, duplicates)

    # -- flushing -----------------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            if not self._pending:
                if self._closing:
                    return
                self._kick.clear()
                await self._kick.wait()
                continue
            now = time.monotonic()
            linger = self._first_at + self.flush_interval - now
            if self.min_spacing is not None:
                linger = min(linger, self._last_flush + self.min_spacing - now)
            if linger > 0 and self._pending_events < self.flush_max_events and not self._closing:
                self._kick.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._kick.wait(), linger)
                continue
            batch = self._pending
            self._pending = []
            self._pending_events = 0
            self._last_flush = time.monotonic()
            try:
                await self._flush(batch)
            except Exception as exc:  # a bug here must not stop every later write
                log.exception("ingest_flush_crashed", error=repr(exc))
                self._fail(batch, exc)

    async def _flush(self, batch: list[_Pending]) -> None:
        seen: set[str] = set()
        blocks: list[EventBlock] = []
        links: dict[tuple[str, str], tuple[str, str, str, int]] = {}
        for item in batch:
            block = item.block
            keys = block.keys
            if keys:
                fresh = set(keys)
                if len(fresh) == len(keys) and seen.isdisjoint(fresh):  # the usual case
                    seen |= fresh
                else:  # the same message twice in one block: store it once
                    again = set()
                    for key, position in zip(keys, block.key_positions, strict=True):
                        if key in seen:
                            again.add(position)
                        seen.add(key)
                    block.without(again)
            blocks.append(block)
            for project_id, distinct_id, person_id in item.aliases:
                links[(project_id, distinct_id)] = (
                    project_id,
                    distinct_id,
                    person_id,
                    item.received_ms,
                )
        started = time.perf_counter()
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(self._executor, self._insert, blocks, list(links.values()))
        except Exception as exc:
            FLUSHES.labels("error").inc()
            self.stats.failed_flushes += 1
            self.stats.last_error = str(exc)
            if self.stats.failing_since is None:
                self.stats.failing_since = time.time()
            log.error("ingest_flush_failed", events=sum(map(len, blocks)), error=str(exc))
            if len(batch) > 1 and not isinstance(exc, LowDiskSpace):
                # One request's rows must not fail everyone's: store each request on its own.
                for item in batch:
                    await self._flush_alone(item)
            else:
                self._fail(batch, exc)
            return
        FLUSHES.labels("ok").inc()
        FLUSH_SECONDS.observe(time.perf_counter() - started)
        self._done(batch, seen, sum(map(len, blocks)), links)

    async def _flush_alone(self, item: _Pending) -> None:
        links = {(p, d): (p, d, person, item.received_ms) for p, d, person in item.aliases}
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(
                self._executor, self._insert, [item.block], list(links.values())
            )
        except Exception as exc:
            log.error("ingest_request_insert_failed", events=len(item.block), error=str(exc))
            self._fail([item], exc)
            return
        self._done([item], set(item.block.keys), len(item.block), links)

    def _flatten(self, links: list[tuple[str, str, str, int]]) -> list[tuple[str, str, str, int]]:
        """Links as reports read them: one step from a distinct id to its person.

        Reports map a distinct id to a person in one step, so every stored link must point
        at an id that has no link of its own. A new link to an id that is linked already
        points at that id's person (identify anon -> user-1 after alias user-1 -> user-2:
        anon -> user-2); ids whose person becomes linked follow it (anon -> user-1, then
        user-1 -> user-2: anon -> user-2 as well); and a link back to itself (u2 -> u3 while
        u3 -> u2 is stored) is dropped: the two are one person already.
        """
        out: list[tuple[str, str, str, int]] = []
        by_project: dict[str, dict[str, tuple[str, int]]] = {}
        for project_id, distinct_id, person_id, updated_ms in links:
            by_project.setdefault(project_id, {})[distinct_id] = (person_id, updated_ms)
        for project_id, new in by_project.items():
            targets = sorted({person for person, _ in new.values()})
            rows = self.store.query(
                "SELECT distinct_id, person_id FROM person_aliases FINAL "
                "WHERE project_id = {p:UUID} AND person_id != '' "
                "AND (distinct_id IN {t:Array(String)} OR person_id IN {d:Array(String)})",
                {"p": project_id, "t": targets, "d": sorted(new)},
            ).rows
            wanted = set(targets)
            stored = {str(d): str(person) for d, person in rows if str(d) in wanted}
            followers = [(str(d), str(person)) for d, person in rows if str(person) in new]

            resolved: dict[str, str] = {}
            for distinct_id, (person_id, updated_ms) in new.items():
                person = _person_of(person_id, distinct_id, new, stored)
                if person is None:
                    continue  # a link back to itself: one person already
                resolved[distinct_id] = person
                out.append((project_id, distinct_id, person, updated_ms))
            for follower, old_person in followers:
                person = resolved.get(old_person)
                if person is not None and follower not in new and person != follower:
                    out.append((project_id, follower, person, new[old_person][1]))
        return out

    @staticmethod
    def _fail(batch: list[_Pending], cause: BaseException) -> None:
        """Fail the requests of `batch`: none of their events is acknowledged."""
        error = (
            cause
            if isinstance(cause, AppError)
            else StoreWriteFailed(
                "the event store did not confirm the events were stored; retry (a retry with "
                "the same message ids is counted once)",
                retry_after=1,
            )
        )
        for item in batch:
            if not item.future.done():
                item.future.set_exception(error)
            if not item.future.cancelled():
                # Retrieved so an abandoned (disconnected) request does not log a warning.
                item.future.exception()

    def _done(
        self,
        batch: list[_Pending],
        keys: set[str],
        written: int,
        links: dict[tuple[str, str], tuple[str, str, str, int]],
    ) -> None:
        EVENTS_WRITTEN.inc(written)
        self.stats.flushes += 1
        self.stats.failing_since = None
        self.stats.written += written
        if len(self.stats.flush_sizes) < 10_000:
            self.stats.flush_sizes.append(written)
        self._recent.update(keys)
        for project_id, distinct_id, person_id, _ in links.values():
            self._aliases_written.add((project_id, distinct_id, person_id))
        for item in batch:
            if not item.future.done():
                item.future.set_result(None)

    def _insert(self, blocks: list[EventBlock], links: list[tuple[str, str, str, int]]) -> None:
        """Store the links, then the events of `blocks` as one Arrow table; raise unless
        the store confirms every event (`EventStore.insert_arrow` checks the count)."""
        if self.disk is not None:
            self.disk.check_before_write()
        # Aliases first: an event is never visible before the link that names its person.
        if links:
            links = self._flatten(links)
        if links:
            data = b"\n".join(
                orjson.dumps(
                    {
                        "project_id": project_id,
                        "distinct_id": distinct_id,
                        "person_id": person_id,
                        "updated_at": format_ms(updated_ms),
                    }
                )
                for project_id, distinct_id, person_id, updated_ms in links
            )
            self.store.insert_raw(
                "person_aliases", data, fmt="JSONEachRow", settings=_ALIAS_SETTINGS, writer=True
            )
        table = build_table(blocks)
        if table is not None:
            self.store.insert_arrow("events", table, settings=_EVENT_SETTINGS)
