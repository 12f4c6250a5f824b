"""Insert blocks into a chDB store until the disk refuses; print what was acknowledged.

Run in a process of its own (one chDB engine per process) by test_insert_faults.py:

    python fill_store.py DIR store    # EventStore.insert_arrow, the real events schema
    python fill_store.py DIR stream   # chDB's streaming insert (send_insert) on its own

Prints one JSON line: blocks sent, rows acknowledged (the call returned), the errors, and
the rows the store holds afterwards (distinct message ids).
"""

from __future__ import annotations

import os
import secrets
import sys
import time
import uuid

import orjson
import pyarrow as pa

ROWS = 5_000


def block(number: int) -> pa.Table:
    # Random text compresses badly, so a few MB fill the disk in a few blocks.
    now = int(time.time() * 1000)
    ids = [f"b{number}-{i}" for i in range(ROWS)]
    return pa.table(
        {
            "project_id": [PROJECT] * ROWS,
            "event_id": [str(uuid.uuid4()) for _ in range(ROWS)],
            "message_id": ids,
            "type": ["track"] * ROWS,
            "event": ["filled"] * ROWS,
            "timestamp": pa.array([now] * ROWS, pa.timestamp("ms", tz="UTC")),
            "received_at": pa.array([now] * ROWS, pa.timestamp("ms", tz="UTC")),
            "distinct_id": ids,
            "properties": [orjson.dumps({"blob": secrets.token_hex(48)}).decode()] * ROWS,
            "title": [secrets.token_urlsafe(120) for _ in range(ROWS)],
        }
    )


PROJECT = "22222222-2222-2222-2222-222222222222"


def main() -> None:
    directory, mode = sys.argv[1], sys.argv[2]
    acknowledged = 0
    errors: list[str] = []
    sent = 0
    if mode == "store":
        from sextant.core.eventstore import EventStore
        from sextant.migrations.event_schema import migrate

        store = EventStore(f"chdb://{directory}")
        migrate(store)

        def insert(table: pa.Table) -> None:
            store.insert_arrow("events", table, settings={"optimize_on_insert": 0})

        def stored() -> int:
            return int(store.query("SELECT uniqExact(message_id) FROM events").scalar())

    else:
        import chdb

        conn = chdb.connect(directory)  # type: ignore[no-untyped-call]
        conn.query(
            "CREATE TABLE IF NOT EXISTS t (project_id UUID, event_id UUID, message_id String, "
            "type String, event String, timestamp DateTime64(3, 'UTC'), "
            "received_at DateTime64(3, 'UTC'), distinct_id String, properties String, "
            "title String) ENGINE = MergeTree ORDER BY message_id"
        )

        def insert(table: pa.Table) -> None:
            sink = pa.BufferOutputStream()
            with pa.ipc.new_stream(sink, table.schema) as stream:
                stream.write_table(table)
            inserter = conn.send_insert("INSERT INTO t", "ArrowStream")
            inserter.append(sink.getvalue().to_pybytes())
            inserter.finish()

        def stored() -> int:
            return int(conn.query("SELECT uniqExact(message_id) FROM t").bytes())

    while len(errors) < 3 and sent < 400:
        table = block(sent)
        sent += 1
        try:
            insert(table)
        except Exception as exc:
            errors.append(str(exc).split("\n", 1)[0][:300])
            continue
        acknowledged += table.num_rows
    if len(sys.argv) > 3:  # the test grows the disk, then asks for the count (and a retry)
        print(orjson.dumps({"phase": "full"}).decode(), flush=True)
        sys.stdin.readline()
        try:
            insert(block(10_000))
            acknowledged += ROWS
            resumed = True
        except Exception as exc:
            errors.append(str(exc).split("\n", 1)[0][:300])
            resumed = False
    else:
        resumed = False
    result = {
        "blocks": sent,
        "rows_per_block": ROWS,
        "acknowledged": acknowledged,
        "errors": errors,
        "stored": stored(),
        "resumed": resumed,
    }
    print(orjson.dumps(result).decode(), flush=True)
    os._exit(0)  # skip the engine's teardown


if __name__ == "__main__":
    main()
