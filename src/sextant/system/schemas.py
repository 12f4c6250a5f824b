"""Response models for the health endpoints."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel


class Health(BaseModel):
    status: Literal["ok"]
    version: str


class DiskReading(BaseModel):
    """The event store's disk, as the free-space guard last read it."""

    path: str
    free_bytes: int
    total_bytes: int
    min_free_bytes: int
    read_only: bool
    accepting_events: bool


class StoreCheck(BaseModel):
    name: str
    # degraded: the store answers, but ingestion is refused (its disk is low or read-only)
    status: Literal["ok", "degraded", "down"]
    backend: str
    error: str | None = None


class Readiness(BaseModel):
    # degraded: reads are served, ingestion is refused (503 low_disk_space); still ready,
    # so a load balancer keeps sending the reads
    status: Literal["ok", "degraded"]
    checks: list[StoreCheck]
    # The event store's disk (None where it cannot be read)
    event_store_disk: DiskReading | None = None
