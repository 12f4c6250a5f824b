"""The `sextant` command line (Typer)."""

from __future__ import annotations

import typer
from rich.console import Console

from sextant.config import get_settings

app = typer.Typer(no_args_is_help=True, help="Sextant: self-hosted event analytics.")
console = Console()


@app.command()
def serve(
    host: str = typer.Option(None, help="Interface to bind (default: SEXTANT_HOST)."),
    port: int = typer.Option(None, help="Port (default: SEXTANT_PORT)."),
    reload: bool = typer.Option(False, help="Reload on code changes (development)."),
) -> None:
    """Start the HTTP server."""
    import uvicorn

    settings = get_settings()
    uvicorn.run(
        "sextant.app:create_app",
        factory=True,
        host=host or settings.host,
        port=port or settings.port,
        reload=reload,
        loop="uvloop",
        http="httptools",
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=30,
    )


@app.command()
def migrate() -> None:
    """Apply control-plane and event-store migrations."""
    from sextant.core.eventstore import close_event_store, open_event_store
    from sextant.migrations import control, event_schema

    settings = get_settings()
    control.upgrade(settings.database_url)
    console.print(f"control plane up to date ({settings.database_url.split('://', 1)[0]})")
    store = open_event_store(settings.events_url)
    try:
        applied = event_schema.migrate(store)
    finally:
        close_event_store(settings.events_url)
    console.print(f"event store up to date ({', '.join(applied) or 'nothing to apply'})")


@app.command()
def demo(
    events: int = typer.Option(1_000_000, min=1, help="How many events to generate."),
    seed: int = typer.Option(42, help="Random seed: the same seed gives the same data."),
    days: int = typer.Option(90, min=1, max=3650, help="Spread the data over this many days."),
    timezone: str = typer.Option("Europe/Berlin", help="The demo project's time zone."),
) -> None:
    """Create a demo organisation, project and keys, and fill it with realistic events."""
    import time

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    from sextant.core.db import Database
    from sextant.core.eventstore import EventStoreError, close_event_store, open_event_store
    from sextant.core.logging import configure_logging
    from sextant.ingest import demo as demo_data
    from sextant.migrations import control, event_schema

    settings = get_settings()
    configure_logging(level="WARNING", json=settings.json_logs)
    control.upgrade(settings.database_url)
    try:
        store = open_event_store(settings.events_url)
    except EventStoreError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from exc
    db = Database(settings.database_url)
    try:
        event_schema.migrate(store)
        workspace = demo_data.create_workspace(db, settings, timezone=timezone)
        started = time.perf_counter()
        with Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=console,
        ) as progress:
            task = progress.add_task("generating events", total=events)
            demo_data.load(
                store,
                workspace.project_id,
                events,
                seed=seed,
                days=days,
                on_progress=lambda done: progress.update(task, completed=done),
            )
        elapsed = time.perf_counter() - started
        built = None
        if settings.rollups_enabled:
            from sextant.analytics.rollups import RollupBuilder

            # The import is done: roll its days up now, so the first dashboard load is fast.
            with console.status("building daily rollups"):
                builder = RollupBuilder(store, quiet_seconds=0)
                links_before = store.query("SELECT now64(3, 'UTC')").scalar()
                built = builder.build(workspace.project_id, timezone)
                # Every day was built with every link of the import: the server's first
                # check must not take them for new ones and send every day back to raw.
                builder.aliases.handled(workspace.project_id, links_before)
    finally:
        db.dispose()
        close_event_store(settings.events_url)
    console.print(f"stored {events:,} events in {elapsed:.1f} s ({events / elapsed:,.0f}/s)")
    if built is not None:
        console.print(f"rolled up {built.days} days in {built.seconds:.1f} s")
    console.print(f"sign in:     {workspace.email} / {workspace.password}")
    console.print(f"org:         {workspace.org_id}")
    console.print(f"project:     {workspace.project_id} ({timezone})")
    console.print(f"write key:   {workspace.write_key}")
    console.print(f"read key:    {workspace.read_key}")


def _add_domain_commands() -> None:
    from sextant.accounts.cli import app as user_app
    from sextant.projects.cli import app as key_app

    app.add_typer(user_app, name="user")
    app.add_typer(key_app, name="key")
    from sextant.governance import cli as governance_cli

    app.command("export")(governance_cli.export)
    app.command("retention")(governance_cli.retention)


_add_domain_commands()


if __name__ == "__main__":
    app()
