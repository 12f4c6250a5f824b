"""Start-up and shutdown hooks called from the app's lifespan."""

from __future__ import annotations

from fastapi import FastAPI


async def startup(app: FastAPI) -> None:
    return None


async def shutdown(app: FastAPI) -> None:
    return None
