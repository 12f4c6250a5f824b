"""FastAPI factory and lifespan: wires the stores, the writer, caches and routers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import structlog
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from starlette.concurrency import run_in_threadpool

from sextant import __version__
from sextant.accounts.router import router as accounts_router
from sextant.analytics import lifecycle as analytics_lifecycle
from sextant.analytics.router import router as analytics_router
from sextant.config import Settings, get_settings
from sextant.core.db import Database
from sextant.core.errors import install_error_handlers
from sextant.core.eventstore import open_event_store
from sextant.core.logging import configure_logging
from sextant.core.middleware import RequestContextMiddleware
from sextant.core.ratelimit import RateLimiter
from sextant.core.responses import FastJSONResponse
from sextant.dashboard.router import router as dashboard_router
from sextant.governance import lifecycle as governance_lifecycle
from sextant.governance.router import router as governance_router
from sextant.ingest import lifecycle as ingest_lifecycle
from sextant.ingest.router import IngestFastPath
from sextant.ingest.router import router as ingest_router
from sextant.migrations import control
from sextant.migrations.event_schema import migrate as migrate_events
from sextant.projects.dependencies import build_key_resolver
from sextant.projects.router import router as projects_router
from sextant.system.router import router as system_router

log = structlog.get_logger("sextant")


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    # Both stores are brought to the code's schema at start-up, as `sextant migrate` does.
    await run_in_threadpool(control.upgrade_at_start, settings.database_url)
    app.state.db = Database(settings.database_url)
    app.state.key_resolver = build_key_resolver(app.state.db, settings)
    app.state.rate_limiter = RateLimiter(settings.redis_url)
    app.state.events = open_event_store(
        settings.events_url,
        query_settings={
            "max_execution_time": settings.query_timeout_seconds,
            "max_memory_usage": settings.query_max_memory_bytes,
        },
    )
    applied = await run_in_threadpool(migrate_events, app.state.events)
    if applied:
        log.info("event_store_migrated", applied=applied)
    await ingest_lifecycle.startup(app)
    await analytics_lifecycle.startup(app)
    await governance_lifecycle.startup(app)
    log.info(
        "started",
        version=__version__,
        environment=settings.environment.value,
        control_plane=settings.database_url.split("://", 1)[0],
        events=settings.events_url.split("://", 1)[0],
    )
    try:
        yield
    finally:
        await governance_lifecycle.shutdown(app)
        await analytics_lifecycle.shutdown(app)
        await ingest_lifecycle.shutdown(app)
        # The views' Buffer tables hold the last seconds of marks and first occurrences.
        await run_in_threadpool(app.state.events.flush_buffers)
        app.state.db.dispose()
        log.info("stopped")


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    configure_logging(level=settings.log_level, json=settings.json_logs)
    app = FastAPI(
        title="Sextant",
        version=__version__,
        summary="Self-hosted, multi-tenant event analytics on the ClickHouse engine.",
        lifespan=lifespan,
        default_response_class=FastJSONResponse,
    )
    app.state.settings = settings
    install_error_handlers(app)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_credentials=True,
            allow_methods=["*"],
            allow_headers=["*"],
        )
    # Inner to the request-id/metrics middleware: ingestion skips the router (hot path).
    app.add_middleware(IngestFastPath)
    app.add_middleware(RequestContextMiddleware)

    app.include_router(system_router)
    app.include_router(accounts_router)
    app.include_router(projects_router)
    app.include_router(ingest_router)
    app.include_router(analytics_router)
    app.include_router(governance_router)
    app.include_router(dashboard_router)
    return app
