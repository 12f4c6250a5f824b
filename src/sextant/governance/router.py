"""Governance endpoints: a person's data (export, deletion) and bulk export."""

from __future__ import annotations

import unicodedata
from datetime import UTC, datetime
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Depends, Query
from fastapi.responses import StreamingResponse

from sextant.accounts.permissions import Permission, can
from sextant.analytics.timerange import resolve as resolve_range
from sextant.core.convertors import register as register_convertors
from sextant.core.deps import EventStoreDep
from sextant.core.errors import Forbidden
from sextant.governance import service
from sextant.governance.schemas import PersonDeletionRead
from sextant.governance.service import MEDIA_TYPES, ExportFormat
from sextant.projects.context import ProjectContext
from sextant.projects.dependencies import ProjectReadDep

register_convertors()  # `any_text`: any distinct id ingestion accepts, "/" and newlines too
router = APIRouter(prefix="/api/v1/projects/{project_id}", tags=["governance"])


def require_data_admin(context: ProjectReadDep) -> ProjectContext:
    """A signed-in owner or admin: personal data is not for read keys or viewers."""
    if context.role is None:
        raise Forbidden(
            "a person's data can only be exported or deleted by a signed-in owner or admin "
            "of the organisation, not with an API key"
        )
    if not can(context.role, Permission.MANAGE_PROJECTS):
        raise Forbidden(
            f"your role ({context.role}) may not export or delete personal data; "
            "ask an owner or admin"
        )
    return context


DataAdminDep = Annotated[ProjectContext, Depends(require_data_admin)]
FormatQuery = Annotated[ExportFormat, Query(description="`ndjson` (default) or `csv`.")]


def _attachment(name: str, fmt: ExportFormat) -> dict[str, str]:
    """`Content-Disposition` for a download named after `name`, whatever it holds (RFC 6266):
    `filename*` carries it in UTF-8, percent-encoded; `filename` an ASCII stand-in for old
    clients. Control characters and path separators become `_` in both (no file name may
    hold them, and CR/LF would break the header)."""
    safe = "".join(
        "_" if unicodedata.category(char) == "Cc" or char in "/\\" else char for char in name
    )
    fallback = "".join(char if " " <= char <= "~" and char not in '"%;' else "_" for char in safe)
    filename = f"{safe}.{fmt.value}"
    return {
        "Content-Disposition": (
            f'attachment; filename="{fallback}.{fmt.value}"; '
            f"filename*=UTF-8''{quote(filename, safe='')}"
        )
    }


@router.delete("/persons/{distinct_id:any_text}", response_model=PersonDeletionRead)
def delete_person(
    distinct_id: str, context: DataAdminDep, store: EventStoreDep
) -> PersonDeletionRead:
    """Delete one person's events and identity links (right to erasure).

    Every distinct id linked to the person through identify/alias goes too. The rows stop
    appearing in every report at once; this cannot be undone.
    """
    result = service.delete_person(store, project_id=context.project_id, distinct_id=distinct_id)
    return PersonDeletionRead(
        distinct_ids=result.distinct_ids, events_deleted=result.events_deleted
    )


@router.get("/persons/{distinct_id:any_text}/export", response_class=StreamingResponse)
def export_person(
    distinct_id: str,
    context: DataAdminDep,
    store: EventStoreDep,
    format: FormatQuery = ExportFormat.NDJSON,
) -> StreamingResponse:
    """Export everything stored about one person (right of access), oldest first."""
    body = service.export_person(
        store, project_id=context.project_id, distinct_id=distinct_id, fmt=format
    )
    return StreamingResponse(
        body, media_type=MEDIA_TYPES[format], headers=_attachment(f"person-{distinct_id}", format)
    )


@router.get("/export", response_class=StreamingResponse)
def export_events(
    context: ProjectReadDep,
    store: EventStoreDep,
    format: FormatQuery = ExportFormat.NDJSON,
    date_from: Annotated[
        str | None, Query(description="ISO date/datetime or -7d, mtd, ytd; default: all")
    ] = None,
    date_to: Annotated[str | None, Query(description="ISO date/datetime; default: now")] = None,
) -> StreamingResponse:
    """Export the project's events (all columns), oldest first, as NDJSON or CSV."""
    start: datetime | None = None
    end: datetime | None = None
    if (date_from and date_from != "all") or date_to:
        span = resolve_range(
            date_from=date_from if date_from and date_from != "all" else "1970-01-01",
            date_to=date_to,
            tz_name=context.timezone,
            interval="day",
            now=datetime.now(UTC),
        )
        start, end = span.start, span.end
    body = service.export_events(
        store, project_id=context.project_id, start=start, end=end, fmt=format
    )
    return StreamingResponse(
        body, media_type=MEDIA_TYPES[format], headers=_attachment("events", format)
    )
