"""What the ingest and query paths need to know about a project, detached from the ORM."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ProjectContext:
    project_id: str
    org_id: str
    name: str
    timezone: str
    retention_days: int
    store_raw_ip: bool
    key_id: str | None = None  # set when an API key authenticated the request
    user_id: str | None = None  # set when a signed-in member authenticated the request
    role: str | None = None
