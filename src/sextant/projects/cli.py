"""`sextant key ...`: issue API keys from the server's shell."""

from __future__ import annotations

from datetime import timedelta

import typer
from rich.console import Console

from sextant.config import get_settings
from sextant.core.db import Database, utcnow
from sextant.core.errors import AppError
from sextant.core.logging import configure_logging
from sextant.migrations import control
from sextant.projects import service
from sextant.projects.models import KeyKind

app = typer.Typer(no_args_is_help=True, help="Manage API keys.")
err = Console(stderr=True)


@app.command("create")
def create(
    project: str = typer.Option(..., help="Project id."),
    kind: KeyKind = typer.Option(..., help="write: send events; read: query analytics."),
    name: str = typer.Option(..., help="What the key is for, e.g. 'website'."),
    expires_days: int | None = typer.Option(None, min=1, help="Stop working after N days."),
) -> None:
    """Create an API key and print its secret (shown only once) on stdout."""
    name = name.strip()
    if not name or len(name) > 200:
        err.print("[red]--name must be 1-200 characters[/red]")
        raise typer.Exit(2)
    expires_at = utcnow() + timedelta(days=expires_days) if expires_days else None
    settings = get_settings()
    configure_logging(level="WARNING", json=settings.json_logs)
    control.upgrade(settings.database_url)
    db = Database(settings.database_url)
    try:
        with db.session() as session:
            key, secret = service.create_key_for_project(
                session, project_id=project, name=name, kind=kind, expires_at=expires_at
            )
            err.print(f"created {kind.value} key {key.prefix}... ({key.id}) for project {project}")
            typer.echo(secret)
    except AppError as exc:
        err.print(f"[red]{exc.message}[/red]")
        raise typer.Exit(1) from exc
    finally:
        db.dispose()
