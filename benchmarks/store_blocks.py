"""What the event store costs per row, by insert block size: insert, then merges.

    python benchmarks/store_blocks.py                       # blocks of 12,000, 48,000, 192,000
    python benchmarks/store_blocks.py --blocks 8000 --rows 2000000

Each block size runs in a fresh process on a fresh chDB directory with the real migrations
(`events` with its views and indexes). The rows are the benchmark event of `ingest.py`,
normalised by the real `Normalizer` and built into the writer's Arrow table once; every
insert gives them new message ids so nothing collapses. The process's CPU time (all
threads: the insert and the background merges) is measured while inserting, then while the
merges settle (no merge running for 5 s, or `--settle` seconds). Run the sizes next to each
other: the ratios between them are the result, not the absolute figures.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))


# As the ingest writer inserts (ingest/writer.py).
_WRITER_SETTINGS = {"optimize_on_insert": 0}


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def one(rows: int, block: int, settle: float, statements: list[str]) -> None:
    import pyarrow as pa
    import pyarrow.compute as pc

    from ingest import event
    from sextant.core.eventstore import EventStore
    from sextant.ingest.block import build_table
    from sextant.ingest.enrich import GeoResolver, IpHasher
    from sextant.ingest.normalize import Normalizer, RequestMeta
    from sextant.migrations.event_schema import migrate

    directory = tempfile.mkdtemp(prefix="sextant-store-blocks-")
    store = EventStore(f"chdb://{directory}/events")
    migrate(store)
    for statement in statements:  # a schema variant to compare with the real one
        store.command(statement)
    normalizer = Normalizer(geo=GeoResolver(None), hasher=IpHasher("b" * 40))
    stamp = dt.datetime.now(dt.UTC).isoformat()
    project = "11111111-1111-1111-1111-111111111111"
    blocks = []
    for start in range(0, block, 500):
        items = [event(start + i, stamp) | {"message_id": f"m-{start + i}"} for i in range(500)]
        meta = RequestMeta(
            project_id=project,
            store_raw_ip=False,
            received_ms=int(time.time() * 1000),
            ip="81.2.69.160",
        )
        blocks.append(normalizer.block(items, meta, day=stamp[:10])[0])
    table = build_table(blocks)
    assert table is not None
    ids = table.column_names.index("message_id")
    inserted = 0
    number = 0
    cpu_before = _cpu()
    while inserted < rows:
        fresh = pc.binary_join_element_wise(table["message_id"], pa.scalar(f"-{number}"), "")
        store.insert_arrow(
            "events", table.set_column(ids, "message_id", fresh), settings=_WRITER_SETTINGS
        )
        inserted += table.num_rows
        number += 1
    insert_cpu = _cpu() - cpu_before
    cpu_before = _cpu()
    started = time.monotonic()
    quiet = 0
    while time.monotonic() - started < settle and quiet < 5:
        running = store.query("SELECT count() FROM system.merges").scalar()
        quiet = quiet + 1 if running == 0 else 0
        time.sleep(1)
    merge_cpu = _cpu() - cpu_before
    parts = store.query(
        "SELECT count() FROM system.parts WHERE active AND table = 'events'"
    ).scalar()
    print(
        f"block {block:>8,}  rows {inserted:>10,}  insert {insert_cpu / inserted * 1e6:6.2f} us/row"
        f"  merges after {merge_cpu / inserted * 1e6:6.2f} us/row"
        f"  total {(insert_cpu + merge_cpu) / inserted * 1e6:6.2f} us/row  active parts {parts}",
        flush=True,
    )
    shutil.rmtree(directory, ignore_errors=True)
    os._exit(0)  # skip the engine's teardown: the directory is gone


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_200_000)
    parser.add_argument("--blocks", type=int, nargs="+", default=[12_000, 48_000, 192_000])
    parser.add_argument("--settle", type=float, default=60.0, help="longest wait for merges")
    parser.add_argument(
        "--sql",
        action="append",
        default=[],
        metavar="STATEMENT",
        help="run after the migrations, e.g. to measure a schema variant (repeatable)",
    )
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        one(args.rows, args.one, args.settle, args.sql)
        return
    print(f"cpus: {os.cpu_count()}  load average before: {os.getloadavg()[0]:.2f}")
    for block in args.blocks:  # one engine per process: each size in a process of its own
        command = [sys.executable, __file__, "--one", str(block), "--rows", str(args.rows)]
        for statement in args.sql:
            command += ["--sql", statement]
        subprocess.run([*command, "--settle", str(args.settle)], check=True)


if __name__ == "__main__":
    main()
