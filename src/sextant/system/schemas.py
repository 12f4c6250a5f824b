"""Response models for the health endpoints."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel


class Health(BaseModel):
    status: Literal["ok"]
    version: str


class StoreCheck(BaseModel):
    name: str
    status: Literal["ok", "down"]
    backend: str
    error: str | None = None


class Readiness(BaseModel):
    status: Literal["ok"]
    checks: list[StoreCheck]
