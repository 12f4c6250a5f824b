"""`sextant export` and `sextant retention`: governance from the command line."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path

import typer
from rich.console import Console

from sextant.config import get_settings
from sextant.core.db import Database
from sextant.core.errors import NotFound
from sextant.core.eventstore import close_event_store, open_event_store
from sextant.governance import service
from sextant.governance.service import ExportFormat
from sextant.projects.models import Project

console = Console(stderr=True)


def _parse_day(value: str | None, option: str) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise typer.BadParameter(
            f"{value!r} is not an ISO date or datetime", param_hint=option
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def export(
    project: str = typer.Option(..., "--project", help="Project id."),
    date_from: str | None = typer.Option(None, "--from", help="ISO date/datetime (UTC)."),
    date_to: str | None = typer.Option(None, "--to", help="ISO date/datetime (UTC), exclusive."),
    fmt: ExportFormat = typer.Option(ExportFormat.NDJSON, "--format"),
    output: Path | None = typer.Option(None, "--output", "-o", help="File (default: stdout)."),
) -> None:
    """Export a project's events as NDJSON or CSV, oldest first."""
    settings = get_settings()
    db = Database(settings.database_url)
    try:
        with db.session() as session:
            if session.get(Project, project) is None:
                raise NotFound(f"no project {project}")
        store = open_event_store(settings.events_url)
        chunks = service.export_events(
            store,
            project_id=project,
            start=_parse_day(date_from, "--from"),
            end=_parse_day(date_to, "--to"),
            fmt=fmt,
        )
        sink = output.open("wb") if output else sys.stdout.buffer
        written = 0
        try:
            for chunk in chunks:
                sink.write(chunk)
                written += len(chunk)
        finally:
            if output:
                sink.close()
        console.print(f"exported {written:,} bytes" + (f" to {output}" if output else ""))
    except NotFound as exc:
        console.print(f"[red]{exc.message}[/red]")
        raise typer.Exit(1) from exc
    finally:
        db.dispose()
        close_event_store(settings.events_url)


def retention() -> None:
    """Delete events older than each project's retention period, now."""
    settings = get_settings()
    db = Database(settings.database_url)
    try:
        deleted = service.apply_retention(open_event_store(settings.events_url), db)
    finally:
        db.dispose()
        close_event_store(settings.events_url)
    if not deleted:
        console.print("nothing past its retention period")
    for project_id, rows in deleted.items():
        console.print(f"{project_id}: deleted {rows:,} expired events")
