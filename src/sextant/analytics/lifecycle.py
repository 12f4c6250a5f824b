"""Start-up and shutdown hooks called from the app's lifespan."""

from __future__ import annotations

from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool

from sextant.analytics.rollups import RollupBuilder, RollupScheduler, recover_buffers
from sextant.analytics.service import AnalyticsService
from sextant.config import Settings
from sextant.core.cache import make_cache


async def startup(app: FastAPI) -> None:
    settings: Settings = app.state.settings
    cache = make_cache(settings.redis_url)
    app.state.query_cache = cache
    # A killed predecessor may have left marks and first occurrences in the views' buffers.
    await run_in_threadpool(recover_buffers, app.state.events)
    scheduler = None
    if settings.rollups_enabled:
        builder = RollupBuilder(app.state.events, quiet_seconds=settings.rollup_quiet_seconds)
        scheduler = RollupScheduler(builder, interval_seconds=settings.rollup_interval_seconds)
        scheduler.start()
    app.state.rollups = scheduler
    app.state.analytics = AnalyticsService(
        store=app.state.events,
        cache=cache,
        ttl_seconds=settings.query_cache_ttl_seconds,
        limits={
            "max_execution_time": settings.query_timeout_seconds,
            "max_memory_usage": settings.query_max_memory_bytes,
        },
        use_rollups=settings.rollups_enabled,
        scheduler=scheduler,
        funnel_memory_bytes=settings.funnel_memory_mb * 1024 * 1024,
    )


async def shutdown(app: FastAPI) -> None:
    scheduler: RollupScheduler | None = getattr(app.state, "rollups", None)
    if scheduler is not None:
        await run_in_threadpool(scheduler.stop)
    cache = getattr(app.state, "query_cache", None)
    if cache is not None:
        cache.close()
