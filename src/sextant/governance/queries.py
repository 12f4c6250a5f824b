"""Event-store access for governance. Every statement is scoped to one project."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

from sextant.analytics import rollups
from sextant.core.eventstore import EventStore
from sextant.ingest.event import EVENT_COLUMNS

# Every column but the tenant key and the raw IP (only stored on opt-in, never exported).
EXPORT_COLUMNS: tuple[str, ...] = tuple(c for c in EVENT_COLUMNS if c not in ("project_id", "ip"))
# Big integers and UUIDs as text, so every JSON reader keeps them exact.
_SELECT = ", ".join(
    "toString(tx_value) AS tx_value"
    if c == "tx_value"
    else "toString(event_id) AS event_id"
    if c == "event_id"
    else c
    for c in EXPORT_COLUMNS
)
PAGE_ROWS = 20_000


def person_distinct_ids(store: EventStore, *, project_id: str, distinct_id: str) -> list[str]:
    """Every distinct id that belongs to the same person as `distinct_id`."""
    result = store.query(
        """
        WITH mapping AS (
            SELECT distinct_id, argMax(person_id, updated_at) AS person_id
            FROM person_aliases
            WHERE project_id = {project_id:UUID}
            GROUP BY distinct_id
        ),
        target AS (
            -- any() over no rows gives '', not NULL: fall back to the id itself
            SELECT if(found = '', {distinct_id:String}, found) AS person
            FROM (SELECT any(person_id) AS found FROM mapping
                  WHERE distinct_id = {distinct_id:String})
        )
        SELECT distinct_id FROM mapping WHERE person_id = (SELECT person FROM target)
        UNION DISTINCT SELECT person FROM target
        UNION DISTINCT SELECT {distinct_id:String}
        """,
        {"project_id": project_id, "distinct_id": distinct_id},
    )
    return sorted({str(row[0]) for row in result.rows if row[0]})


def count_events(store: EventStore, *, project_id: str, distinct_ids: Sequence[str]) -> int:
    result = store.query(
        "SELECT count() FROM events FINAL WHERE project_id = {project_id:UUID} "
        "AND distinct_id IN {ids:Array(String)}",
        {"project_id": project_id, "ids": list(distinct_ids)},
    )
    return int(result.scalar() or 0)


def delete_person_rows(store: EventStore, *, project_id: str, distinct_ids: Sequence[str]) -> None:
    params = {"project_id": project_id, "ids": list(distinct_ids)}
    # Lightweight deletes: rows vanish from every query at once, disk space is reclaimed
    # by the next merge. Both tables, so the person cannot be re-linked afterwards.
    store.command(
        "DELETE FROM events WHERE project_id = {project_id:UUID} "
        "AND (distinct_id IN {ids:Array(String)} OR user_id IN {ids:Array(String)} "
        "OR anonymous_id IN {ids:Array(String)})",
        params,
    )
    store.command(
        "DELETE FROM person_aliases WHERE project_id = {project_id:UUID} "
        "AND (distinct_id IN {ids:Array(String)} OR person_id IN {ids:Array(String)})",
        params,
    )
    store.flush_buffers()
    store.command(
        "DELETE FROM first_seen_data WHERE project_id = {project_id:UUID} "
        "AND distinct_hash IN arrayMap(x -> cityHash64(x), {ids:Array(String)})",
        params,
    )
    invalidate_rollups(store, project_id=project_id)


def invalidate_rollups(store: EventStore, *, project_id: str) -> None:
    """Deleted events leave daily rollups behind: the project's days are read raw until
    they are rebuilt."""
    rollups.mark_all_written(store, project_id)


def iter_event_pages(
    store: EventStore,
    *,
    project_id: str,
    start: datetime | None = None,
    end: datetime | None = None,
    distinct_ids: Sequence[str] | None = None,
) -> Iterator[list[dict[str, Any]]]:
    """Pages of events in (timestamp, event_id) order, keyset-paginated."""
    conditions = ["project_id = {project_id:UUID}"]
    params: dict[str, Any] = {"project_id": project_id, "limit": PAGE_ROWS}
    if start is not None:
        conditions.append("timestamp >= {start:DateTime64(3, 'UTC')}")
        params["start"] = start
    if end is not None:
        conditions.append("timestamp < {end:DateTime64(3, 'UTC')}")
        params["end"] = end
    if distinct_ids is not None:
        conditions.append("distinct_id IN {ids:Array(String)}")
        params["ids"] = list(distinct_ids)
    where = " AND ".join(conditions)
    cursor: tuple[datetime, str] | None = None
    while True:
        page_where = where
        if cursor is not None:
            page_where += (
                " AND (timestamp, toString(event_id)) > "
                "({after_ts:DateTime64(3, 'UTC')}, {after_id:String})"
            )
            params["after_ts"], params["after_id"] = cursor
        result = store.query(
            f"SELECT {_SELECT} FROM events FINAL WHERE {page_where} "
            "ORDER BY timestamp, toString(event_id) LIMIT {limit:UInt32}",
            params,
        )
        rows = result.dicts()
        if not rows:
            return
        # Take the cursor before handing the page out: the consumer may rewrite the rows.
        last = rows[-1]
        cursor = (last["timestamp"], str(last["event_id"]))
        yield rows
        if len(rows) < PAGE_ROWS:
            return


def project_tables(store: EventStore) -> list[str]:
    """Every table that holds rows of projects: the MergeTree tables with a `project_id`
    column, read from the schema so that a table added later cannot be forgotten (views
    write into these tables; Buffer tables are flushed into them)."""
    rows = store.query(
        "SELECT table FROM system.columns WHERE database = currentDatabase() "
        "AND name = 'project_id' AND table IN (SELECT name FROM system.tables "
        "WHERE database = currentDatabase() AND engine LIKE '%MergeTree') ORDER BY table"
    ).rows
    return [str(table) for (table,) in rows]


def delete_project_rows(store: EventStore, *, project_ids: Sequence[str]) -> None:
    """Every row of these projects, in every table: one statement per table whatever the
    number of projects (a delete costs about the same for one project as for hundreds)."""
    if not project_ids:
        return
    params = {"ids": list(project_ids)}
    store.flush_buffers()
    for table in project_tables(store):
        store.command(f"DELETE FROM `{table}` WHERE project_id IN {{ids:Array(UUID)}}", params)


def stored_project_ids(store: EventStore) -> set[str]:
    return {str(row[0]) for row in store.query("SELECT DISTINCT project_id FROM events").rows}


def expired_count(store: EventStore, *, project_id: str, before: datetime) -> int:
    result = store.query(
        "SELECT count() FROM events WHERE project_id = {project_id:UUID} "
        "AND timestamp < {before:DateTime64(3, 'UTC')}",
        {"project_id": project_id, "before": before},
    )
    return int(result.scalar() or 0)


def delete_expired(store: EventStore, *, project_id: str, before: datetime) -> None:
    store.command(
        "DELETE FROM events WHERE project_id = {project_id:UUID} "
        "AND timestamp < {before:DateTime64(3, 'UTC')}",
        {"project_id": project_id, "before": before},
    )
    # First occurrences before the cutoff are gone with their events: store the ids' next
    # ones first (as a generation of their own, which no merge folds into the old rows),
    # then drop the old (until then the old minimum still wins, as before).
    store.command(
        "INSERT INTO first_seen_data (project_id, event, is_bot, distinct_hash, first_ts, "
        "generation) SELECT project_id, event, is_bot, cityHash64(distinct_id) AS h, "
        "min(timestamp), toUInt32(now()) FROM events WHERE project_id = {project_id:UUID} "
        "AND h IN (SELECT distinct_hash FROM first_seen WHERE project_id = {project_id:UUID} "
        "AND first_ts < {before:DateTime64(3, 'UTC')}) GROUP BY project_id, event, is_bot, h",
        {"project_id": project_id, "before": before},
    )
    store.flush_buffers()
    store.command(
        "DELETE FROM first_seen_data WHERE project_id = {project_id:UUID} "
        "AND first_ts < {before:DateTime64(3, 'UTC')}",
        {"project_id": project_id, "before": before},
    )
    invalidate_rollups(store, project_id=project_id)
