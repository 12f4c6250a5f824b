"""The free-space guard: readings of real filesystems, and the writer refusing on them."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from fastapi import FastAPI

from filesystems import small_filesystem
from sextant.core.diskspace import DiskGuard, LowDiskSpace
from sextant.core.eventstore import EventStore
from sextant.ingest.event import Row, format_ms
from sextant.ingest.writer import Writer


@pytest.fixture
def store(app: FastAPI, client: Any) -> EventStore:
    return app.state.events  # type: ignore[no-any-return]


def _rows(project_id: str, n: int) -> list[Row]:
    return [
        {
            "project_id": project_id,
            "event_id": str(uuid.uuid4()),
            "message_id": f"m-{i}",
            "type": "track",
            "event": "e",
            "timestamp": format_ms(1_767_225_600_000 + i),
            "received_at": format_ms(1_767_225_600_000 + i),
            "distinct_id": "u",
        }
        for i in range(n)
    ]


def test_a_filesystem_with_room_is_accepted(store: EventStore) -> None:
    with small_filesystem(16) as fs:
        guard = DiskGuard(store, min_free_bytes=4 * 1_048_576, path=fs.path)
        state = guard.state
        assert state.ok
        assert guard.accepting
        assert 15 * 1_048_576 < state.free_bytes <= state.total_bytes == 16 * 1_048_576
        guard.check_before_write()  # does not raise


def test_below_the_floor_ingestion_is_refused_until_space_is_back(store: EventStore) -> None:
    with small_filesystem(16) as fs:
        guard = DiskGuard(store, min_free_bytes=12 * 1_048_576, path=fs.path)
        assert guard.accepting
        (fs.path / "ballast").write_bytes(b"\0" * 6 * 1_048_576)  # tmpfs stores zeros too
        assert guard.accepting  # the last reading, until the next check
        state = guard.check()
        assert state.reason == "low_disk_space"
        assert not guard.accepting
        with pytest.raises(LowDiskSpace) as refused:
            guard.check_before_write()
        assert refused.value.status_code == 503
        assert refused.value.code == "low_disk_space"
        assert "SEXTANT_INGEST_MIN_FREE_DISK_MB" in refused.value.message
        assert int(refused.value.headers["Retry-After"]) >= 5
        (fs.path / "ballast").unlink()
        assert guard.check().ok
        assert guard.accepting


def test_a_read_only_filesystem_is_refused(store: EventStore) -> None:
    with small_filesystem(16, read_only=True) as fs:
        guard = DiskGuard(store, min_free_bytes=0, path=fs.path)
        assert guard.state.read_only
        assert guard.state.reason == "read_only"
        assert "read-only" in guard.refuse_error().message


def test_on_a_server_the_reading_comes_from_system_disks(
    store: EventStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The `http(s)://` path (no local directory): `system.disks` of the events table."""
    monkeypatch.setattr(store, "embedded", False)
    guard = DiskGuard(store, min_free_bytes=1)
    monkeypatch.undo()
    state = guard.state
    assert state.error is None, state.error
    assert state.path.startswith("default:")
    assert 0 < state.free_bytes <= state.total_bytes
    assert state.ok
    huge = DiskGuard(store, min_free_bytes=state.total_bytes + 1, path=None)
    assert not huge.accepting  # embedded again: its own directory, the same disk


async def test_the_writer_refuses_before_buffering_and_at_the_flush(store: EventStore) -> None:
    project_id = str(uuid.uuid4())
    with small_filesystem(16) as fs:
        guard = DiskGuard(store, min_free_bytes=8 * 1_048_576, path=fs.path)
        writer = Writer(
            store, flush_interval_ms=50, flush_max_events=100, buffer_max_events=100, disk=guard
        )
        writer.start()
        try:
            await writer.write(project_id, _rows(project_id, 2))  # room: stored
            # Space goes while a request waits in the buffer: the flush refuses it.
            (fs.path / "ballast").write_bytes(b"\0" * 10 * 1_048_576)
            with pytest.raises(LowDiskSpace):
                await writer.write(project_id, _rows(project_id, 3)[2:])
            assert not guard.accepting  # the flush's reading
            with pytest.raises(LowDiskSpace):  # refused at once, before buffering
                await writer.write(project_id, _rows(project_id, 1))
            assert writer.buffered == 0
        finally:
            await writer.close()
    stored = store.query(
        "SELECT message_id FROM events WHERE project_id = {p:UUID} ORDER BY message_id",
        {"p": project_id},
    ).rows
    assert stored == (("m-0",), ("m-1",))
