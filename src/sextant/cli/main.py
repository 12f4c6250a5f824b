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


def _add_domain_commands() -> None:
    from sextant.accounts.cli import app as user_app
    from sextant.projects.cli import app as key_app

    app.add_typer(user_app, name="user")
    app.add_typer(key_app, name="key")


_add_domain_commands()


if __name__ == "__main__":
    app()
