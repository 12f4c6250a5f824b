"""Start-up and shutdown hooks called from the app's lifespan."""

from __future__ import annotations

import gc
import os

import structlog
from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool

from sextant.config import Settings
from sextant.core.diskspace import DiskGuard
from sextant.core.eventstore import EventStore
from sextant.ingest.enrich import GeoResolver, IpHasher, TrustedProxies
from sextant.ingest.normalize import Normalizer
from sextant.ingest.pool import NormalizerPool
from sextant.ingest.service import IngestService
from sextant.ingest.writer import Writer

log = structlog.get_logger(__name__)


def apply_fsync(store: EventStore, *, enabled: bool) -> None:
    """`fsync_after_insert` is a MergeTree table setting: set it to match the config."""
    value = 1 if enabled else 0
    for table in ("events", "person_aliases"):
        store.command(
            f"ALTER TABLE {table} MODIFY SETTING "
            f"fsync_after_insert = {value}, fsync_part_directory = {value}"
        )


_gc_tuned = False


def tune_gc() -> None:
    """Keep the cyclic garbage collector off the ingest hot path (once per process).

    Every request allocates a few hundred objects, so with the default thresholds (700)
    the collector runs every few requests and its older generations walk everything the
    app loaded at start-up (routes, models, parsers, the geo database). Freezing what exists
    after start-up takes those out of every collection, and a larger first threshold makes
    collections rarer; short-lived request objects are freed by reference counting anyway.
    Measured with benchmarks/ingest.py's workload in process: ~175 -> ~93 us of CPU per
    single-event request.
    """
    global _gc_tuned
    if _gc_tuned:
        return
    _gc_tuned = True
    gc.collect()
    gc.freeze()
    gen0, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(max(gen0, 50_000), max(gen1, 20), max(gen2, 20))


def worker_count(setting: int) -> int:
    """Normalising workers for `ingest_workers`; -1 (auto): half the CPUs (at most 8) on a
    machine of 4 or more, none below. Measured on 2 cores (README "Ingestion"): with one
    worker the server's interpreter lock is held 4.9 instead of 21.7 us a batched event, but
    both cores are then busy and the hand-over costs more CPU than it frees, so throughput
    stays the same; the workers pay where there are cores to spare."""
    if setting >= 0:
        return setting
    cpus = os.cpu_count() or 1
    return 0 if cpus < 4 else min(8, cpus // 2)


async def startup(app: FastAPI) -> None:
    settings: Settings = app.state.settings
    store: EventStore = app.state.events
    # The country database takes a moment to load: once per process, off the event loop.
    geo = await run_in_threadpool(GeoResolver, settings.geoip_city_db)
    await run_in_threadpool(apply_fsync, store, enabled=settings.ingest_fsync)
    disk = await run_in_threadpool(
        lambda: DiskGuard(
            store,
            min_free_bytes=settings.ingest_min_free_disk_mb * 1_048_576,
            interval_seconds=settings.disk_check_interval_seconds,
        )
    )
    disk.start()
    app.state.disk_guard = disk
    writer = Writer(
        store,
        flush_interval_ms=settings.ingest_flush_interval_ms,
        flush_max_events=settings.ingest_flush_max_events,
        min_spacing_ms=settings.ingest_flush_min_spacing_ms,
        buffer_max_events=settings.ingest_buffer_max_events,
        disk=disk,
    )
    writer.start()
    app.state.ingest_writer = writer
    secret = settings.secret_key.get_secret_value()
    workers = worker_count(settings.ingest_workers)
    pool = (
        NormalizerPool(
            workers,
            geo_path=str(settings.geoip_city_db) if settings.geoip_city_db else None,
            secret=secret,
            min_bytes=settings.ingest_worker_min_bytes,
        )
        if workers
        else None
    )
    app.state.ingest = IngestService(
        settings=settings,
        resolver=app.state.key_resolver,
        limiter=app.state.rate_limiter,
        normalizer=Normalizer(geo=geo, hasher=IpHasher(secret)),
        writer=writer,
        proxies=TrustedProxies(settings.trusted_proxies),
        pool=pool,
    )
    tune_gc()


async def shutdown(app: FastAPI) -> None:
    """Flush every buffered event before the process exits."""
    writer: Writer | None = getattr(app.state, "ingest_writer", None)
    if writer is not None:
        await writer.close()
        log.info("ingest_writer_stopped", written=writer.stats.written)
    disk: DiskGuard | None = getattr(app.state, "disk_guard", None)
    if disk is not None:
        disk.stop()
    service: IngestService | None = getattr(app.state, "ingest", None)
    if service is not None:
        if service.pool is not None:
            await service.pool.close()
        service.normalizer.geo.close()
