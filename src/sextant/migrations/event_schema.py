"""Versioned event-store schema: `events/NNNN_name.sql`, applied once each, in order."""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources

from sextant.core.eventstore import EventStore

_FILE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
_TABLE = "sextant_schema_migrations"


@dataclass(frozen=True)
class EventMigration:
    version: int
    name: str
    sql: str

    def statements(self, *, replacing_engine: str) -> list[str]:
        text = self.sql.replace("{replacing_engine}", replacing_engine)
        lines = [ln for ln in text.splitlines() if not ln.strip().startswith("--")]
        return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]


def available() -> list[EventMigration]:
    folder = resources.files("sextant.migrations") / "events"
    found = []
    for entry in folder.iterdir():
        match = _FILE.match(entry.name)
        if match:
            found.append(EventMigration(int(match[1]), match[2], entry.read_text("utf-8")))
    return sorted(found, key=lambda m: m.version)


def applied(store: EventStore) -> set[int]:
    store.command(
        f"CREATE TABLE IF NOT EXISTS {_TABLE} (version UInt32, name String, "
        "applied_at DateTime DEFAULT now()) ENGINE = MergeTree ORDER BY version"
    )
    return {int(r[0]) for r in store.query(f"SELECT version FROM {_TABLE}").rows}


def migrate(store: EventStore, *, replacing_engine: str = "ReplacingMergeTree") -> list[str]:
    """Apply pending migrations; return the names applied."""
    done = applied(store)
    names = []
    for migration in available():
        if migration.version in done:
            continue
        for statement in migration.statements(replacing_engine=replacing_engine):
            store.command(statement)
        store.insert(_TABLE, [[migration.version, migration.name]], ["version", "name"])
        names.append(f"{migration.version:04d}_{migration.name}")
    return names
