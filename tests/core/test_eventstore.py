"""The event-store client on the session's chDB directory, and its one-process lock."""

from __future__ import annotations

import contextlib
import datetime as dt
import subprocess
import sys
import textwrap
import uuid
from typing import Any

import pytest
from fastapi import FastAPI

from sextant.core.eventstore import EventStoreError, QueryTooExpensive, chdb_path
from sextant.ingest.event import ALIAS_COLUMNS
from sextant.migrations import event_schema


@pytest.fixture
def store(app: FastAPI, client: Any) -> Any:
    return app.state.events


def test_second_process_gets_a_clear_locked_error(events_url: str, store: Any) -> None:
    script = textwrap.dedent(
        f"""
        import sys
        from sextant.core.eventstore import EventStoreLocked, open_event_store
        try:
            open_event_store({events_url!r})
        except EventStoreLocked as exc:
            print(exc)
            sys.exit(3)
        sys.exit(0)
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 3, result.stderr
    assert "already open in another process" in result.stdout
    assert str(chdb_path(events_url)) in result.stdout
    assert "SEXTANT_EVENTS_URL" in result.stdout


def test_insert_and_query_with_bound_parameters(store: Any) -> None:
    project_id = str(uuid.uuid4())
    store.insert(
        "person_aliases",
        [[uuid.UUID(project_id), "anon", "user", dt.datetime(2026, 1, 1)]],
        ["project_id", "distinct_id", "person_id", "updated_at"],
    )
    store.insert_raw(
        "person_aliases",
        b'{"project_id": "%s", "distinct_id": "x\'; DROP", "person_id": "p", '
        b'"updated_at": "1767225600.000"}' % project_id.encode(),
        writer=True,
    )
    result = store.query(
        "SELECT distinct_id, person_id FROM person_aliases FINAL "
        "WHERE project_id = {p:UUID} ORDER BY distinct_id",
        {"p": project_id},
    )
    assert result.columns == ("distinct_id", "person_id")
    assert result.rows == (("anon", "user"), ("x'; DROP", "p"))
    assert result.dicts()[0] == {"distinct_id": "anon", "person_id": "user"}
    assert (
        store.query(
            "SELECT count() FROM person_aliases "
            "WHERE project_id = {p:UUID} AND distinct_id = {d:String}",
            {"p": project_id, "d": "x'; DROP"},
        ).scalar()
        == 1
    )


def test_writes_are_counted_so_readers_know_nothing_changed(
    store: Any, no_background_builds: None
) -> None:
    """Every kind of write, failed ones too, moves the count; reads do not."""
    assert store.embedded
    project_id = uuid.uuid4()
    mark = store.writes
    store.query("SELECT count() FROM person_aliases")
    assert store.unchanged_since(mark)
    row = [project_id, "a", "b", dt.datetime(2026, 1, 1)]
    writes = [
        lambda: store.insert("person_aliases", [row], ALIAS_COLUMNS),
        lambda: store.insert_raw(
            "person_aliases", b'{"project_id": "%s"}' % str(project_id).encode()
        ),
        lambda: store.command(
            "DELETE FROM person_aliases WHERE project_id = {p:UUID}", {"p": project_id}
        ),
        lambda: store.insert_raw("no_such_table", b'{"a": 1}'),
    ]
    for write in writes:
        mark = store.writes
        with contextlib.suppress(EventStoreError):
            write()
        assert not store.unchanged_since(mark)
        assert store.writes == mark + 1


def test_driver_errors_are_wrapped(store: Any) -> None:
    with pytest.raises(EventStoreError) as bad_sql:
        store.query("SELEKT 1")
    assert "Syntax error" in str(bad_sql.value) or "SYNTAX" in str(bad_sql.value).upper()
    with pytest.raises(EventStoreError):
        store.insert_raw("no_such_table", b'{"a": 1}')
    with pytest.raises(QueryTooExpensive):
        store.query(
            "SELECT count() FROM numbers(100000000000) WHERE sipHash64(number) = 1",
            settings={"max_execution_time": 1, "timeout_overflow_mode": "throw"},
        )


def test_migrations_are_recorded_and_idempotent(store: Any) -> None:
    assert event_schema.migrate(store) == []
    versions = event_schema.applied(store)
    assert {m.version for m in event_schema.available()} <= versions


def test_fsync_setting_is_applied_to_the_tables(store: Any) -> None:
    from sextant.ingest.lifecycle import apply_fsync

    def table_setting() -> str:
        return str(
            store.query(
                "SELECT create_table_query FROM system.tables "
                "WHERE database = currentDatabase() AND name = 'events'"
            ).scalar()
        )

    apply_fsync(store, enabled=True)
    try:
        assert "fsync_after_insert = 1" in table_setting()
        assert "fsync_part_directory = 1" in table_setting()
    finally:
        apply_fsync(store, enabled=False)
    assert "fsync_after_insert = 0" in table_setting()
