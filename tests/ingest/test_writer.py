"""Group-commit writer against the session's chDB store."""

from __future__ import annotations

import asyncio
import threading
import uuid
from typing import Any

import pytest
from fastapi import FastAPI

from sextant.core.errors import ServiceUnavailable
from sextant.ingest.event import format_ms
from sextant.ingest.writer import Writer

NOW_MS = 1_767_225_600_000


def rows(project_id: str, n: int, prefix: str = "m") -> list[dict[str, Any]]:
    return [
        {
            "project_id": project_id,
            "event_id": uuid.uuid4().hex,
            "message_id": f"{prefix}-{i}",
            "type": "track",
            "event": "e",
            "timestamp": format_ms(NOW_MS + i),
            "received_at": format_ms(NOW_MS + i),
            "distinct_id": "d",
        }
        for i in range(n)
    ]


@pytest.fixture
def store(app: FastAPI, client: Any) -> Any:
    return app.state.events


def count(store: Any, project_id: str) -> int:
    return int(
        store.query(
            "SELECT count() FROM events WHERE project_id = {p:UUID}", {"p": project_id}
        ).scalar()
    )


async def test_concurrent_requests_share_one_flush(store: Any) -> None:
    project_id = str(uuid.uuid4())
    writer = Writer(store, flush_interval_ms=60_000, flush_max_events=50, buffer_max_events=1000)
    writer.start()
    try:
        results = await asyncio.gather(
            *(writer.write(project_id, rows(project_id, 1, f"r{i}")) for i in range(50))
        )
    finally:
        await writer.close()
    assert all(r.written == 1 for r in results)
    assert writer.stats.flushes == 1  # 50 requests, one insert: the buffer filled up
    assert writer.stats.flush_sizes == [50]
    assert count(store, project_id) == 50


async def test_shutdown_flushes_everything_buffered(store: Any) -> None:
    project_id = str(uuid.uuid4())
    writer = Writer(store, flush_interval_ms=600_000, flush_max_events=10_000, buffer_max_events=10)
    writer.start()
    pending = asyncio.gather(
        *(writer.write(project_id, rows(project_id, 2, f"s{i}")) for i in range(3))
    )
    await asyncio.sleep(0.05)
    assert writer.buffered == 6
    assert count(store, project_id) == 0  # still waiting for the (10 minute) interval
    await writer.close()
    await pending
    assert count(store, project_id) == 6
    with pytest.raises(ServiceUnavailable):
        await writer.write(project_id, rows(project_id, 1, "late"))


async def test_a_failing_request_does_not_fail_the_others(store: Any) -> None:
    project_id = str(uuid.uuid4())
    writer = Writer(store, flush_interval_ms=60_000, flush_max_events=3, buffer_max_events=100)
    writer.start()
    bad = rows(project_id, 1, "bad")
    bad[0]["project_id"] = "not-a-uuid"  # the store refuses the block
    try:
        results = await asyncio.gather(
            writer.write(project_id, rows(project_id, 1, "good-a")),
            writer.write(project_id, bad),
            writer.write(project_id, rows(project_id, 1, "good-b")),
            return_exceptions=True,
        )
    finally:
        await writer.close()
    assert isinstance(results[1], ServiceUnavailable)
    assert results[1].headers["Retry-After"] == "1"
    assert not isinstance(results[0], BaseException)
    assert not isinstance(results[2], BaseException)
    assert count(store, project_id) == 2
    assert writer.stats.failed_flushes == 1


async def test_buffer_limit_refuses_instead_of_growing(store: Any) -> None:
    project_id = str(uuid.uuid4())
    writer = Writer(store, flush_interval_ms=600_000, flush_max_events=10_000, buffer_max_events=5)
    writer.start()
    first = asyncio.ensure_future(writer.write(project_id, rows(project_id, 4, "a")))
    await asyncio.sleep(0.01)
    with pytest.raises(ServiceUnavailable) as refused:
        await writer.write(project_id, rows(project_id, 2, "b"))
    assert "buffer is full" in refused.value.message
    await writer.close()
    await first
    assert count(store, project_id) == 4


async def test_a_crashing_flush_fails_its_requests_and_the_writer_keeps_going(
    store: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    project_id = str(uuid.uuid4())
    writer = Writer(store, flush_interval_ms=5, flush_max_events=100, buffer_max_events=100)
    writer.start()
    original = writer._done
    calls = {"n": 0}

    def crash_once(*args: Any) -> None:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("bug")
        original(*args)

    monkeypatch.setattr(writer, "_done", crash_once)
    try:
        with pytest.raises(ServiceUnavailable):
            await writer.write(project_id, rows(project_id, 1, "first"))
        result = await writer.write(project_id, rows(project_id, 1, "second"))
    finally:
        await writer.close()
    assert result.written == 1


async def test_links_without_new_rows_are_still_written(store: Any) -> None:
    project_id = str(uuid.uuid4())
    writer = Writer(store, flush_interval_ms=5, flush_max_events=100, buffer_max_events=100)
    writer.start()
    try:
        await writer.write(project_id, rows(project_id, 1, "x"), [("anon", "user")])
        # The same message again (skipped as a duplicate) with a new link: the link is stored.
        result = await writer.write(project_id, rows(project_id, 1, "x"), [("anon-2", "user")])
    finally:
        await writer.close()
    assert (result.written, result.duplicates) == (0, 1)
    links = store.query(
        "SELECT distinct_id FROM person_aliases FINAL WHERE project_id = {p:UUID} ORDER BY 1",
        {"p": project_id},
    ).rows
    assert links == (("anon",), ("anon-2",))


async def test_group_commit_flushes_when_idle_and_batches_what_arrives_meanwhile(
    store: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a minimum spacing the interval only caps the wait: an idle writer flushes at once,
    and the requests that arrive while a flush runs form the next block."""
    project_id = str(uuid.uuid4())
    # A 10-minute interval: nothing below may wait for it.
    writer = Writer(
        store,
        flush_interval_ms=600_000,
        flush_max_events=10_000,
        buffer_max_events=1000,
        min_spacing_ms=0,
    )
    inserting = threading.Event()
    release = threading.Event()
    original = writer._insert

    def slow_insert(*args: Any) -> None:
        inserting.set()
        release.wait()
        original(*args)

    monkeypatch.setattr(writer, "_insert", slow_insert)
    writer.start()
    try:
        first = asyncio.ensure_future(writer.write(project_id, rows(project_id, 1, "first")))
        assert await asyncio.to_thread(inserting.wait, 30)  # flushed without waiting
        later = asyncio.gather(
            *(writer.write(project_id, rows(project_id, 1, f"later{i}")) for i in range(3))
        )
        await asyncio.sleep(0)
        assert writer.buffered == 3  # waiting for the running flush, not for the interval
        release.set()
        await asyncio.wait_for(asyncio.gather(first, later), 30)
    finally:
        release.set()
        await writer.close()
    assert writer.stats.flush_sizes == [1, 3]
    assert count(store, project_id) == 4


async def test_a_message_in_two_requests_of_one_block_is_stored_once(store: Any) -> None:
    project_id = str(uuid.uuid4())
    writer = Writer(store, flush_interval_ms=60_000, flush_max_events=3, buffer_max_events=100)
    writer.start()
    try:
        await asyncio.gather(
            writer.write(project_id, rows(project_id, 2, "a")),
            writer.write(project_id, rows(project_id, 1, "a")),  # "a-0" again
        )
    finally:
        await writer.close()
    assert writer.stats.flush_sizes == [2]
    assert count(store, project_id) == 2


async def test_a_partly_retried_batch_stores_only_the_new_events(store: Any) -> None:
    project_id = str(uuid.uuid4())
    writer = Writer(store, flush_interval_ms=5, flush_max_events=100, buffer_max_events=100)
    writer.start()
    try:
        await writer.write(project_id, rows(project_id, 2, "b"))
        result = await writer.write(project_id, rows(project_id, 3, "b"))
    finally:
        await writer.close()
    assert (result.written, result.duplicates) == (1, 2)
    assert count(store, project_id) == 3


async def test_rows_using_different_columns_are_stored_in_one_block(store: Any) -> None:
    project_id = str(uuid.uuid4())
    block = rows(project_id, 2, "c")
    block[0].update(screen_width=1440, duration_ms=1.5, tx_value=str(2**255 + 1), is_bot=1)
    block[1].update(title="Hello", chain_id=2**64 - 1)
    writer = Writer(store, flush_interval_ms=60_000, flush_max_events=2, buffer_max_events=100)
    writer.start()
    try:
        await writer.write(project_id, block)
    finally:
        await writer.close()
    stored = store.query(
        "SELECT message_id, screen_width, duration_ms, toString(tx_value), is_bot, title, "
        "chain_id, toUnixTimestamp64Milli(timestamp) FROM events WHERE project_id = {p:UUID} "
        "ORDER BY message_id",
        {"p": project_id},
    ).rows
    assert stored == (
        ("c-0", 1440, 1.5, str(2**255 + 1), 1, "", 0, NOW_MS),
        ("c-1", 0, 0.0, "0", 0, "Hello", 2**64 - 1, NOW_MS + 1),
    )
