"""Control-plane migrations (Alembic), runnable from code: same files for SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import structlog
from alembic import command
from alembic.config import Config
from sqlalchemy.exc import OperationalError

from sextant.core.db import _ensure_sqlite_dir

HERE = Path(__file__).resolve().parent
log = structlog.get_logger(__name__)


def alembic_config(database_url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(HERE))
    cfg.set_main_option("path_separator", "os")
    cfg.set_main_option("version_locations", str(HERE / "versions"))
    cfg.attributes["database_url"] = database_url
    return cfg


def upgrade(database_url: str, revision: str = "head") -> None:
    _ensure_sqlite_dir(database_url)
    command.upgrade(alembic_config(database_url), revision)


def upgrade_at_start(database_url: str) -> bool:
    """`upgrade` as the server runs it at start-up: True when the schema is at head. A
    database that can't be reached is logged, not raised: the server starts and its
    readiness check names the database until it is back (then run `sextant migrate`)."""
    try:
        upgrade(database_url)
    except OperationalError as exc:
        log.error(
            "control_plane_not_migrated",
            error=str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc),
            hint="the database is unreachable; run `sextant migrate` once it is back",
        )
        return False
    return True


def check(database_url: str) -> None:
    """Raise if the models and the migrations disagree (`alembic check`)."""
    command.check(alembic_config(database_url))
