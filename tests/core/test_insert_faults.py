"""Inserts on a full disk, the store on its own: what returns normally must be stored.

Each run fills a small tmpfs from a process of its own (`fill_store.py`: one chDB engine
per process) and compares the rows acknowledged with the rows the store holds.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson

from filesystems import small_filesystem

SCRIPT = Path(__file__).with_name("fill_store.py")


def _fill(directory: Path, mode: str, *, then_grow: Any = None) -> dict[str, Any]:
    command = [sys.executable, str(SCRIPT), str(directory), mode]
    if then_grow is None:
        done = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
        assert done.returncode == 0, done.stderr[-3000:]
        return dict(orjson.loads(done.stdout.strip().splitlines()[-1]))
    process = subprocess.Popen(
        [*command, "grow"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    assert process.stdin is not None
    try:
        phase = process.stdout.readline()
        assert orjson.loads(phase) == {"phase": "full"}, process.stderr.read()[-3000:]
        then_grow()
        process.stdin.write("\n")
        process.stdin.flush()
        out, err = process.communicate(timeout=300)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, err[-3000:]
    return dict(orjson.loads(out.strip().splitlines()[-1]))


def test_event_store_insert_raises_on_a_full_disk_and_keeps_what_it_acknowledged() -> None:
    with small_filesystem(24) as fs:
        result = _fill(fs.path / "events", "store", then_grow=lambda: fs.grow(256))
    assert result["errors"], result  # the disk did fill up
    assert all("space" in error.lower() for error in result["errors"]), result["errors"]
    assert result["acknowledged"] > 0
    # Every acknowledged row is stored, and nothing else; after the disk grew, inserts work.
    assert result["stored"] == result["acknowledged"], result
    assert result["resumed"] is True


def test_chdb_streaming_insert_still_acknowledges_rows_it_lost_on_a_full_disk() -> None:
    """Pins chDB's behaviour that made us leave `send_insert` (EventStore.insert_arrow).

    If this fails, a chDB upgrade changed it: either the streaming insert now raises on a
    full disk (it could be used again: it is the cheaper path) or it loses rows some other
    way. Either way, look before upgrading.
    """
    with small_filesystem(24) as fs:
        result = _fill(fs.path / "stream", "stream")
    assert result["blocks"] == 400, result
    assert not result["errors"], result  # never raised
    assert result["acknowledged"] == 400 * result["rows_per_block"]
    assert result["stored"] < result["acknowledged"], result  # and lost what did not fit
