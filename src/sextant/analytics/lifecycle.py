"""Start-up and shutdown hooks called from the app's lifespan."""

from __future__ import annotations

from fastapi import FastAPI

from sextant.analytics.service import AnalyticsService
from sextant.config import Settings
from sextant.core.cache import make_cache


async def startup(app: FastAPI) -> None:
    settings: Settings = app.state.settings
    cache = make_cache(settings.redis_url)
    app.state.query_cache = cache
    app.state.analytics = AnalyticsService(
        store=app.state.events,
        cache=cache,
        ttl_seconds=settings.query_cache_ttl_seconds,
        limits={
            "max_execution_time": settings.query_timeout_seconds,
            "max_memory_usage": settings.query_max_memory_bytes,
        },
    )


async def shutdown(app: FastAPI) -> None:
    cache = getattr(app.state, "query_cache", None)
    if cache is not None:
        cache.close()
