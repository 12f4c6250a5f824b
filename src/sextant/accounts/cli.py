"""`sextant user ...`: manage accounts from the server's shell (e.g. the first admin)."""

from __future__ import annotations

import os
import sys

import typer
from pydantic import ValidationError
from rich.console import Console

from sextant.accounts import service
from sextant.accounts.schemas import UserCreate
from sextant.config import get_settings
from sextant.core.db import Database
from sextant.core.errors import AppError
from sextant.core.logging import configure_logging
from sextant.migrations import control

app = typer.Typer(no_args_is_help=True, help="Manage user accounts.")
err = Console(stderr=True)

PASSWORD_ENV = "SEXTANT_PASSWORD"


def _password(given: str | None) -> str:
    if given:
        return given
    if os.environ.get(PASSWORD_ENV):
        return os.environ[PASSWORD_ENV]
    if sys.stdin.isatty():
        return str(typer.prompt("Password", hide_input=True, confirmation_prompt=True))
    err.print(
        f"[red]no password: pass --password, set {PASSWORD_ENV}, or run in a terminal "
        "to be prompted[/red]"
    )
    raise typer.Exit(2)


@app.command("create")
def create(
    email: str = typer.Option(..., help="Sign-in email."),
    name: str = typer.Option(..., help="Display name."),
    admin: bool = typer.Option(False, "--admin", help="Make a platform administrator."),
    password: str | None = typer.Option(
        None, help=f"Password (prefer the prompt or {PASSWORD_ENV}: flags end up in history)."
    ),
) -> None:
    """Create a user (works when registration is disabled)."""
    try:
        data = UserCreate(email=email, name=name, password=_password(password), is_admin=admin)
    except ValidationError as exc:
        for error in exc.errors():
            field = ".".join(str(p) for p in error["loc"])
            err.print(f"[red]{field}: {error['msg']}[/red]")
        raise typer.Exit(2) from exc
    settings = get_settings()
    configure_logging(level="WARNING", json=settings.json_logs)
    control.upgrade(settings.database_url)
    db = Database(settings.database_url)
    try:
        with db.session() as session:
            user = service.create_user(
                session,
                settings=settings,
                email=data.email,
                password=data.password,
                name=data.name,
                is_admin=data.is_admin,
            )
            role = "admin" if user.is_admin else "user"
            err.print(f"created {role} {user.email}")
            typer.echo(user.id)
    except AppError as exc:
        err.print(f"[red]{exc.message}[/red]")
        raise typer.Exit(1) from exc
    finally:
        db.dispose()
