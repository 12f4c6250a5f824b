"""Governance rules: who a person is, what deleting them removes, exports, retention."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

import orjson
import structlog
from sqlalchemy import select

from sextant.core.db import Database
from sextant.core.errors import NotFound
from sextant.core.eventstore import EventStore
from sextant.governance import queries
from sextant.projects.models import Project

log = structlog.get_logger("sextant.governance")


class ExportFormat(StrEnum):
    NDJSON = "ndjson"
    CSV = "csv"


MEDIA_TYPES = {ExportFormat.NDJSON: "application/x-ndjson", ExportFormat.CSV: "text/csv"}


@dataclass(frozen=True, slots=True)
class PersonDeletion:
    distinct_ids: list[str]
    events_deleted: int


def _iso(moment: datetime) -> str:
    """UTC with an explicit `Z` (the store hands back naive UTC datetimes)."""
    aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return aware.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _cell(value: Any) -> Any:
    return _iso(value) if isinstance(value, datetime) else value


def _json_row(row: dict[str, Any]) -> bytes:
    for column in ("timestamp", "received_at"):
        row[column] = _cell(row[column])
    props = row.get("properties") or "{}"
    try:
        row["properties"] = orjson.loads(props)
    except orjson.JSONDecodeError:
        row["properties"] = {"_raw": props}
    return orjson.dumps(row, default=str) + b"\n"


def _serialise(pages: Iterator[list[dict[str, Any]]], fmt: ExportFormat) -> Iterator[bytes]:
    if fmt == ExportFormat.NDJSON:
        for page in pages:
            yield b"".join(_json_row(row) for row in page)
        return
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(queries.EXPORT_COLUMNS)
    for page in pages:
        for row in page:
            writer.writerow([_cell(row[c]) for c in queries.EXPORT_COLUMNS])
        yield buffer.getvalue().encode()
        buffer.seek(0)
        buffer.truncate()
    if buffer.tell():  # no rows at all: still a header line
        yield buffer.getvalue().encode()


def resolve_person(store: EventStore, *, project_id: str, distinct_id: str) -> list[str]:
    """The person's distinct ids, or 404 when no event or alias knows `distinct_id`."""
    ids = queries.person_distinct_ids(store, project_id=project_id, distinct_id=distinct_id)
    if queries.count_events(store, project_id=project_id, distinct_ids=ids) == 0 and ids == [
        distinct_id
    ]:
        raise NotFound(f"no person with distinct id {distinct_id!r} in this project")
    return ids


def delete_person(store: EventStore, *, project_id: str, distinct_id: str) -> PersonDeletion:
    """Delete every event and alias of one person (all their distinct ids)."""
    ids = resolve_person(store, project_id=project_id, distinct_id=distinct_id)
    count = queries.count_events(store, project_id=project_id, distinct_ids=ids)
    queries.delete_person_rows(store, project_id=project_id, distinct_ids=ids)
    log.info("person_deleted", project_id=project_id, distinct_ids=len(ids), events=count)
    return PersonDeletion(distinct_ids=ids, events_deleted=count)


def export_person(
    store: EventStore, *, project_id: str, distinct_id: str, fmt: ExportFormat
) -> Iterator[bytes]:
    """Everything stored about one person, oldest first."""
    ids = resolve_person(store, project_id=project_id, distinct_id=distinct_id)
    pages = queries.iter_event_pages(store, project_id=project_id, distinct_ids=ids)
    return _serialise(pages, fmt)


def export_events(
    store: EventStore,
    *,
    project_id: str,
    start: datetime | None,
    end: datetime | None,
    fmt: ExportFormat,
) -> Iterator[bytes]:
    pages = queries.iter_event_pages(store, project_id=project_id, start=start, end=end)
    return _serialise(pages, fmt)


def purge_projects(store: EventStore, project_ids: Sequence[str]) -> None:
    """Delete every event of projects that were deleted from the control plane."""
    queries.delete_project_rows(store, project_ids=project_ids)
    for project_id in project_ids:
        log.info("project_events_purged", project_id=project_id)


def apply_retention(
    store: EventStore, db: Database, *, now: datetime | None = None
) -> dict[str, int]:
    """Delete events older than each project's retention period; returns rows per project.

    Also purges the events of projects that no longer exist (deleted in another process,
    or with their organisation).
    """
    now = now or datetime.now(UTC)
    with db.session() as session:
        projects = session.execute(select(Project.id, Project.retention_days)).all()
    deleted: dict[str, int] = {}
    known = {str(project_id) for project_id, _ in projects}
    purge_projects(store, sorted(queries.stored_project_ids(store) - known))
    for project_id, retention_days in projects:
        cutoff = now - timedelta(days=int(retention_days))
        expired = queries.expired_count(store, project_id=project_id, before=cutoff)
        if expired:
            queries.delete_expired(store, project_id=project_id, before=cutoff)
            deleted[project_id] = expired
            log.info("retention_applied", project_id=project_id, deleted=expired, cutoff=cutoff)
    return deleted
