"""Group-commit writer against the session's chDB store."""

from __future__ import annotations

import asyncio
import functools
import threading
import uuid
from typing import Any

import pytest
from fastapi import FastAPI

from sextant.core.errors import ServiceUnavailable
from sextant.ingest.enrich import GeoResolver, IpHasher
from sextant.ingest.event import format_ms
from sextant.ingest.normalize import Normalizer, RequestMeta
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


@functools.cache
def normalizer() -> Normalizer:
    return Normalizer(geo=GeoResolver(), hasher=IpHasher("w" * 40))


def fast_block(project_id: str, n: int, prefix: str) -> Any:
    """A request's block the way the normaliser's fast path builds it (client message ids)."""
    meta = RequestMeta(
        project_id=project_id, store_raw_ip=False, received_ms=NOW_MS, ip="81.2.69.160"
    )
    items = [
        {
            "event": "view",
            "message_id": f"{prefix}-{i}",
            "anonymous_id": f"a-{i % 3}",
            "timestamp": NOW_MS + i,
            "properties": {"i": i, "price": 1.5},
            "context": {
                "page": {"url": f"https://shop.example/p/{i % 2}?utm_source=ads"},
                "userAgent": (
                    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15"
                    " (KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1"
                ),
                "screen": {"width": 390, "height": 844},
            },
        }
        for i in range(n)
    ]
    block, _, rejected = normalizer().block(items, meta)
    assert rejected == []
    assert block.fast_count == n
    return block


async def test_fast_path_columns_and_rows_in_one_block_store_every_column_type(
    store: Any,
) -> None:
    """One Arrow insert for a block whose requests set different columns (and types)."""
    project_id = str(uuid.uuid4())
    web3 = rows(project_id, 1, "w3")
    web3[0].update(
        type="web3",
        tx_value=str(2**255 + 1),
        chain_id=2**64 - 1,
        wallet_address="0x52908400098527886E0F7030069857D2E4169EE7",
        token_symbol="ETH",
    )
    api = rows(project_id, 1, "api")
    api[0].update(type="api", http_method="GET", http_status=503, duration_ms=12.25, is_bot=1)
    writer = Writer(store, flush_interval_ms=60_000, flush_max_events=12, buffer_max_events=100)
    writer.start()
    try:
        await asyncio.gather(
            writer.write(project_id, fast_block(project_id, 10, "f")),
            writer.write(project_id, web3),
            writer.write(project_id, api),
        )
    finally:
        await writer.close()
    assert writer.stats.flush_sizes == [12]
    stored = {
        row["message_id"]: row
        for row in store.query(
            "SELECT message_id, type, event, toUnixTimestamp64Milli(timestamp) AS ts, "
            "toUnixTimestamp64Milli(received_at) AS received, distinct_id, host, path, "
            "utm_source, browser, os, device_type, is_bot, screen_width, country, "
            "length(ip_hash) AS hash_length, properties, toString(tx_value) AS tx_value, "
            "chain_id, wallet_address, token_symbol, http_method, http_status, duration_ms, "
            "toString(event_id) AS event_id FROM events WHERE project_id = {p:UUID}",
            {"p": project_id},
        ).dicts()
    }
    assert len(stored) == 12
    fast = stored["f-3"]
    assert (fast["type"], fast["event"], fast["ts"], fast["received"]) == (
        "track",
        "view",
        NOW_MS + 3,
        NOW_MS,
    )
    assert (fast["distinct_id"], fast["host"], fast["path"], fast["utm_source"]) == (
        "a-0",
        "shop.example",
        "/p/1",
        "ads",
    )
    assert (fast["browser"], fast["os"], fast["device_type"], fast["is_bot"]) == (
        "Mobile Safari",
        "iOS",
        "mobile",
        0,
    )
    assert (fast["screen_width"], fast["country"], fast["hash_length"]) == (390, "GB", 32)
    assert fast["properties"] == '{"i":3,"price":1.5}'
    assert (fast["tx_value"], fast["chain_id"], fast["http_status"]) == ("0", 0, 0)
    assert len(fast["event_id"]) == 36
    chain = stored["w3-0"]
    assert (chain["tx_value"], chain["chain_id"], chain["token_symbol"]) == (
        str(2**255 + 1),
        2**64 - 1,
        "ETH",
    )
    assert chain["wallet_address"] == "0x52908400098527886E0F7030069857D2E4169EE7"
    assert (chain["browser"], chain["screen_width"], chain["properties"]) == ("", 0, "")
    call = stored["api-0"]
    assert (call["http_method"], call["http_status"], call["duration_ms"], call["is_bot"]) == (
        "GET",
        503,
        12.25,
        1,
    )


async def test_retried_fast_path_events_are_stored_once(store: Any) -> None:
    project_id = str(uuid.uuid4())
    writer = Writer(store, flush_interval_ms=5, flush_max_events=1000, buffer_max_events=1000)
    writer.start()
    try:
        first = await writer.write(project_id, fast_block(project_id, 10, "r"))
        # The same batch again (a retry), and a batch that overlaps it by half.
        again = await writer.write(project_id, fast_block(project_id, 10, "r"))
        overlap = fast_block(project_id, 20, "r")
        partly = await writer.write(project_id, overlap)
        # Two requests with the same messages in one block.
        both = await asyncio.gather(
            writer.write(project_id, fast_block(project_id, 12, "twice")),
            writer.write(project_id, fast_block(project_id, 12, "twice")),
        )
    finally:
        await writer.close()
    assert (first.written, first.duplicates) == (10, 0)
    assert (again.written, again.duplicates) == (0, 10)
    assert (partly.written, partly.duplicates) == (10, 10)
    assert sum(r.written for r in both) == 24  # both buffered; the flush stores each once
    found = store.query(
        "SELECT message_id, count() FROM events WHERE project_id = {p:UUID} GROUP BY 1",
        {"p": project_id},
    ).rows
    assert len(found) == 32
    assert all(n == 1 for _, n in found)
    # What was dropped is the retry's rows, not others: every event's own values stayed.
    kept = store.query(
        "SELECT message_id, properties FROM events WHERE project_id = {p:UUID} "
        "AND message_id IN ('r-15', 'twice-7')",
        {"p": project_id},
    ).rows
    assert sorted(kept) == [("r-15", '{"i":15,"price":1.5}'), ("twice-7", '{"i":7,"price":1.5}')]


async def test_arrow_inserts_through_clickhouse_connect_as_on_a_server(
    store: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The `http(s)://` path (clickhouse-connect's insert_arrow), run against this engine."""
    project_id = str(uuid.uuid4())
    monkeypatch.setattr(store, "embedded", False)
    block = rows(project_id, 2, "srv")
    block[0].update(tx_value=str(2**200), duration_ms=2.5, screen_width=1024)
    writer = Writer(store, flush_interval_ms=60_000, flush_max_events=12, buffer_max_events=100)
    writer.start()
    try:
        await asyncio.gather(
            writer.write(project_id, fast_block(project_id, 10, "f")),
            writer.write(project_id, block),
        )
    finally:
        await writer.close()
    monkeypatch.undo()
    stored = store.query(
        "SELECT message_id, toString(tx_value), duration_ms, screen_width, browser, "
        "toUnixTimestamp64Milli(timestamp) FROM events WHERE project_id = {p:UUID} "
        "AND message_id IN ('srv-0', 'srv-1', 'f-0') ORDER BY message_id",
        {"p": project_id},
    ).rows
    assert stored == (
        ("f-0", "0", 0.0, 390, "Mobile Safari", NOW_MS),
        ("srv-0", str(2**200), 2.5, 1024, "", NOW_MS),
        ("srv-1", "0", 0.0, 0, "", NOW_MS + 1),
    )


def test_events_table_merges_up_to_32_parts_of_a_size_at_a_time(store: Any) -> None:
    """Migrations 0006 and 0008: fewer merges per ingested row (README "Ingestion")."""
    engine = store.query(
        "SELECT engine_full FROM system.tables WHERE database = currentDatabase() "
        "AND name = 'events'"
    ).scalar()
    assert "merge_selector_base = 32" in engine
