"""Retention runs in the background: every `retention_check_interval_seconds`."""

from __future__ import annotations

import asyncio
import contextlib

import structlog
from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool

from sextant.config import Settings
from sextant.governance.service import apply_retention

log = structlog.get_logger("sextant.governance")


async def _retention_loop(app: FastAPI, interval: float) -> None:
    while True:
        try:
            await run_in_threadpool(apply_retention, app.state.events, app.state.db)
        except Exception as exc:  # keep the loop alive; the next pass retries
            log.warning("retention_failed", error=repr(exc))
        await asyncio.sleep(interval)


async def startup(app: FastAPI) -> None:
    settings: Settings = app.state.settings
    app.state.retention_task = None
    if settings.retention_check_interval_seconds > 0:
        app.state.retention_task = asyncio.create_task(
            _retention_loop(app, settings.retention_check_interval_seconds)
        )


async def shutdown(app: FastAPI) -> None:
    task: asyncio.Task[None] | None = getattr(app.state, "retention_task", None)
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
