"""Normalising worker processes: batched bodies decoded and normalised off the event loop.

One Python process serves HTTP, normalises events and runs the group-commit writer, and
those share one interpreter lock: under a batched load the lock is busy ~75 % of the time
while a core sits partly idle (benchmarks/ingest.py; README "Ingestion"). Embedded, the
store can only live in one process, so the server keeps HTTP, keys, rate limits and the
writer, and hands a large body (native, or a Segment `/v1/batch`) as bytes to a worker
process, which decodes it,
applies every rule of `prepare.py` and the `Normalizer`, and answers with the accepted
events as an Arrow table (plus their dedup keys, person links and rejections). The
server stores that table like any other request's events: a request is still answered
only once its events are in the store.

Workers start on the first large body (that request is normalised in the server, as are
all requests until the workers are up), so a server that never receives a batch never
starts one. Bodies under `min_bytes` (single events, small batches) stay in the server:
a round trip to a worker costs more than normalising them. A worker that dies takes the
pool down with it; the request it held is normalised in the server and the pool is
started again on the next large body.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import gc
import multiprocessing
import os
import signal
import threading
import time
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

import pyarrow as pa
import structlog
from prometheus_client import Counter

from sextant.core.errors import BadRequest
from sextant.ingest.block import EventBlock, build_table
from sextant.ingest.normalize import Normalizer, RequestMeta
from sextant.ingest.prepare import BODY_PREPARERS, Dialect, PreparedBody

log = structlog.get_logger(__name__)

POOLED = Counter(
    "sextant_ingest_pooled_requests_total",
    "Ingestion requests by where their events were normalised",
    ["where"],
)

# After workers failed to start, bodies are normalised in the server for this long.
START_BACKOFF_S = 60.0
# How often a worker checks that its server is still there.
PARENT_CHECK_S = 1.0

# -- in the worker process ------------------------------------------------------------

_normalizer: Normalizer | None = None


def _watch_parent(parent: int) -> None:
    """Exit once the server is gone. A worker holds both ends of its task queue's pipe, so a
    server killed with SIGKILL (no shutdown) would otherwise leave it waiting forever."""
    while os.getppid() == parent:
        time.sleep(PARENT_CHECK_S)
    os._exit(0)


def _init(geo_path: str | None, secret: str, parent: int) -> None:
    from sextant.ingest.enrich import GeoResolver, IpHasher

    threading.Thread(target=_watch_parent, args=(parent,), daemon=True).start()
    global _normalizer
    # Ctrl-C in a terminal reaches the whole process group: the server stops its workers.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    geo = GeoResolver(Path(geo_path) if geo_path else None)
    _normalizer = Normalizer(geo=geo, hasher=IpHasher(secret))
    # As the server does (ingest/lifecycle.py `tune_gc`): requests allocate many objects.
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)


def _ready() -> int:
    return os.getpid()


def _work(
    body: bytes, meta: RequestMeta, day: str, max_batch: int, dialect: Dialect
) -> tuple[Any, ...]:
    assert _normalizer is not None, "worker not initialised"
    try:
        block, aliases, rejected, single = BODY_PREPARERS[dialect](
            _normalizer, body, meta, day, max_batch
        )
    except BadRequest as exc:
        return ("error", exc.message, exc.code, exc.details)
    table = build_table([block])
    fast = block.fast_count
    # The table holds the fast-path events first, then the rows (`build_table`).
    positions = [p if p >= 0 else fast + ~p for p in block.key_positions]
    # As an Arrow IPC stream: bytes pickle as one copy, and the server reads them without
    # copying (a pickled Table costs a reduce per column and buffer on both sides).
    data = b""
    if table is not None:
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, table.schema) as stream:
            stream.write_table(table)
        data = sink.getvalue().to_pybytes()
    return ("ok", data, block.keys, positions, aliases, rejected, single)


# -- in the server --------------------------------------------------------------------


class NormalizerPool:
    """The server's handle on its normalising workers (see the module docstring)."""

    def __init__(self, workers: int, *, geo_path: str | None, secret: str, min_bytes: int) -> None:
        self.workers = workers
        self.min_bytes = min_bytes
        self._initargs = (geo_path, secret, os.getpid())
        self._executor: ProcessPoolExecutor | None = None
        self._ready = False
        self._starting: asyncio.Task[None] | None = None
        self.pids: list[int] = []
        self._retry_at = 0.0
        # Requests whose events a worker prepared (the rest were prepared in the server).
        self.prepared = 0

    @property
    def ready(self) -> bool:
        return self._ready

    def _start(self) -> None:
        if self._starting is not None or time.monotonic() < self._retry_at:
            return
        # spawn, not fork: the server has threads and an embedded engine that must not be
        # copied into a child.
        executor = ProcessPoolExecutor(
            self.workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_init,
            initargs=self._initargs,
        )
        self._executor = executor
        futures: list[Future[int]] = [executor.submit(_ready) for _ in range(self.workers)]

        async def wait() -> None:
            try:
                pids = await asyncio.gather(*(asyncio.wrap_future(f) for f in futures))
            except Exception as exc:
                log.error("ingest_workers_failed", error=repr(exc), retry_in_s=START_BACKOFF_S)
                self._discard(executor)
                self._retry_at = time.monotonic() + START_BACKOFF_S
                return
            if self._executor is executor:
                self.pids = sorted(set(pids))
                self._ready = True
                log.info("ingest_workers_started", workers=len(pids), pids=self.pids)

        # A context of its own: not the log context of the request that happened to start it.
        self._starting = asyncio.get_running_loop().create_task(
            wait(), name="ingest-workers", context=contextvars.Context()
        )

    def _discard(self, executor: ProcessPoolExecutor) -> None:
        if self._executor is executor:
            self._executor = None
            self._ready = False
            self._starting = None
        executor.shutdown(wait=False, cancel_futures=True)

    async def prepare(
        self, body: bytes, meta: RequestMeta, day: str, max_batch: int, dialect: Dialect
    ) -> PreparedBody | None:
        """The body prepared by a worker, or None: the server must prepare it itself."""
        if len(body) < self.min_bytes:
            return None
        executor = self._executor
        if not self._ready or executor is None:
            self._start()
            POOLED.labels("server").inc()
            return None
        try:
            result = await asyncio.wrap_future(
                executor.submit(_work, body, meta, day, max_batch, dialect)
            )
        except BrokenProcessPool as exc:
            log.error("ingest_worker_died", error=repr(exc))
            self._discard(executor)
            POOLED.labels("server").inc()
            return None
        POOLED.labels("worker").inc()
        self.prepared += 1
        if result[0] == "error":
            _, message, code, details = result
            raise BadRequest(message, code=code, details=details)
        _, data, keys, positions, aliases, rejected, single = result
        table = pa.ipc.open_stream(data).read_all() if data else None
        block = EventBlock.from_table(meta.project_id, meta.received_ms, table, keys, positions)
        return block, aliases, rejected, single

    async def close(self) -> None:
        task, self._starting = self._starting, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
        executor, self._executor = self._executor, None
        self._ready = False
        if executor is not None:
            await asyncio.get_running_loop().run_in_executor(None, executor.shutdown)
