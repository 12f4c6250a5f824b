"""Alembic environment: the URL comes from Sextant's settings or the caller."""

from __future__ import annotations

from alembic import context

import sextant.models  # noqa: F401 - registers every table on Base.metadata
from sextant.config import get_settings
from sextant.core.db import Base, create_db_engine

# pg_advisory_xact_lock key of control-plane migrations ("sextant" in ASCII).
MIGRATION_LOCK = 0x73657874616E74

config = context.config
url = config.attributes.get("database_url") or get_settings().database_url
engine = create_db_engine(url)

with engine.connect() as connection:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            # Servers starting together migrate one at a time; the others then find the
            # schema at head (the lock ends with the transaction).
            connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK})")
        context.run_migrations()
engine.dispose()
