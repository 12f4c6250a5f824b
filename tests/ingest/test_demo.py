"""Demo data: deterministic, realistic in shape, loadable, and the `sextant demo` command."""

from __future__ import annotations

import collections
import datetime as dt
import os
import re
import sqlite3
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

from fastapi import FastAPI

from sextant.ingest.demo import ALIAS_COLUMNS, EVENT_COLUMNS, generate_rows, load

COL = {name: i for i, name in enumerate(EVENT_COLUMNS)}
END = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)


def all_events(n: int, seed: int = 7, days: int = 90) -> tuple[list[list[Any]], list[list[Any]]]:
    events: list[list[Any]] = []
    aliases: list[list[Any]] = []
    for batch in generate_rows(str(uuid.UUID(int=1)), n, seed, days, end=END, batch_size=4000):
        events.extend(batch.events)
        aliases.extend(batch.aliases)
    return events, aliases


def test_exact_count_deterministic_and_in_column_order() -> None:
    events, aliases = all_events(12_000)
    again, _ = all_events(12_000)
    other, _ = all_events(12_000, seed=8)
    assert len(events) == 12_000
    assert events == again
    assert events != other
    assert all(len(row) == len(EVENT_COLUMNS) for row in events)
    assert all(len(row) == len(ALIAS_COLUMNS) for row in aliases)
    start = END - dt.timedelta(days=90)
    assert all(start <= row[COL["timestamp"]] < END for row in events)
    assert all(row[ALIAS_COLUMNS.index("updated_at")] < END for row in aliases)


def test_realistic_shape() -> None:
    events, aliases = all_events(30_000)
    names = collections.Counter(row[COL["event"]] for row in events)
    types = collections.Counter(row[COL["type"]] for row in events)
    assert set(types) == {"page", "track", "identify", "api", "web3"}
    # The funnel narrows at every step.
    assert names["signup"] > names["project_created"] > names["checkout_started"]
    assert names["checkout_started"] > names["purchase"] > 0
    assert names["$identify"] == names["signup"] == len(aliases)
    pages = [row for row in events if row[COL["type"]] == "page"]
    assert len({row[COL["utm_campaign"]] for row in pages}) >= 5
    assert len({row[COL["referrer_domain"]] for row in pages}) >= 8
    assert len({row[COL["country"]] for row in events}) >= 10
    assert {row[COL["device_type"]] for row in pages} >= {"desktop", "mobile", "tablet", "bot"}
    api = [row for row in events if row[COL["type"]] == "api"]
    errors = sum(1 for row in api if row[COL["http_status"]] >= 500)
    assert 0 < errors < len(api) * 0.1
    durations = sorted(row[COL["duration_ms"]] for row in api)
    assert durations[len(durations) // 2] < durations[int(len(durations) * 0.99)] / 3  # long tail
    web3 = [row for row in events if row[COL["type"]] == "web3"]
    assert len({row[COL["chain_id"]] for row in web3}) >= 3
    assert any(row[COL["tx_value"]] > 2**64 for row in web3)  # needs UInt256
    # Retention decays: more visitors come back once than five times.
    sessions = collections.Counter(row[COL["anonymous_id"]] for row in pages)
    per_visitor = collections.Counter(
        len({r[COL["session_id"]] for r in pages if r[COL["anonymous_id"]] == anon})
        for anon in list(sessions)[:2000]
    )
    assert per_visitor[1] > per_visitor[2] > per_visitor[5]


def test_load_into_the_event_store(app: FastAPI, client: Any) -> None:
    store = app.state.events
    project_id = str(uuid.uuid4())
    done: list[int] = []
    inserted = load(
        store, project_id, 6_000, seed=3, days=30, batch_size=2_500, on_progress=done.append
    )
    assert inserted == 6_000
    assert done[-1] == 6_000
    count = store.query(
        "SELECT count() FROM events FINAL WHERE project_id = {p:UUID}", {"p": project_id}
    ).scalar()
    assert count == 6_000
    persons = store.query(
        "SELECT count() FROM person_aliases FINAL WHERE project_id = {p:UUID}", {"p": project_id}
    ).scalar()
    assert persons > 0
    big = store.query(
        "SELECT max(tx_value) FROM events WHERE project_id = {p:UUID}", {"p": project_id}
    ).scalar()
    assert big > 0


def test_demo_command(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "SEXTANT_DATABASE_URL": f"sqlite:///{tmp_path / 'demo.db'}",
        "SEXTANT_EVENTS_URL": f"chdb://{tmp_path / 'events'}",
        "SEXTANT_LOG_LEVEL": "WARNING",
    }
    result = subprocess.run(
        [sys.executable, "-m", "sextant", "demo", "--events", "3000", "--days", "14"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "stored 3,000 events" in out
    assert re.search(r"rolled up 1[45] days", out), out  # the import's days are rolled up
    assert "demo@example.com" in out
    write_key = next(w for w in out.split() if w.startswith("sx_w_"))
    read_key = next(w for w in out.split() if w.startswith("sx_r_"))
    assert write_key
    assert read_key
    with sqlite3.connect(tmp_path / "demo.db") as db:
        assert db.execute("SELECT timezone FROM projects").fetchall() == [("Europe/Berlin",)]
        kinds = sorted(k for (k,) in db.execute("SELECT kind FROM api_keys"))
        assert kinds == ["read", "write"]
    # What the views wrote through their Buffer tables reached the tables before the command
    # exited (every id's first occurrence is stored), and the import's links count as handled
    # (a server started next does not send every day back to raw events).
    probe = (
        "import sys\n"
        "from sextant.core.eventstore import EventStore\n"
        "s = EventStore(sys.argv[1])\n"
        "print(*s.query('SELECT (SELECT uniqExact(event, is_bot, distinct_hash) "
        "FROM first_seen_data), "
        "(SELECT uniqExact(event, is_bot, distinct_id) FROM events), "
        "(SELECT count() FROM person_aliases WHERE inserted_at >= "
        "(SELECT max(marked_to) FROM rollup_alias_marks)), "
        "(SELECT count() FROM person_aliases)').rows[0])\n"
    )
    found = subprocess.run(
        [sys.executable, "-c", probe, f"chdb://{tmp_path / 'events'}"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert found.returncode == 0, found.stderr
    firsts, combos, unhandled, links = (int(x) for x in found.stdout.split())
    assert firsts == combos > 0
    assert links > 0
    assert unhandled == 0
