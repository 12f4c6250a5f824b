"""A full disk, met as an operator meets it: a real server whose event store is on a small
filesystem made by the test, fed by concurrent clients until the disk gives out.

The promise under test: a 2xx means the events are stored. Every acknowledged message id
must be in the store after the filesystem is grown and the server restarted; requests the
server cannot store get 503 with Retry-After, and a retry of those is counted once.
"""

from __future__ import annotations

import re
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from filesystems import SmallFilesystem, small_filesystem
from sextant.sdk.testing import Account, SextantServer, query_store

BATCH = 500


@dataclass
class Tally:
    """What the clients were told, by message id."""

    acknowledged: set[str] = field(default_factory=set)
    refused: list[list[dict[str, Any]]] = field(default_factory=list)
    codes: dict[str, int] = field(default_factory=dict)
    retry_after: set[str] = field(default_factory=set)
    other: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def _batch(prefix: str, number: int) -> list[dict[str, Any]]:
    # Random text compresses badly: a few thousand batches fill tens of MB.
    return [
        {
            "event": "filled",
            "message_id": f"{prefix}-{number}-{i}",
            "user_id": f"u-{i % 50}",
            "properties": {"blob": secrets.token_hex(64)},
            "context": {"page": {"title": secrets.token_urlsafe(90)}},
        }
        for i in range(BATCH)
    ]


def _send(
    http: httpx.Client, account: Account, batch: list[dict[str, Any]], tally: Tally
) -> httpx.Response:
    response = http.post(
        "/api/v1/events", headers={"X-API-Key": account.write_key}, json={"batch": batch}
    )
    with tally.lock:
        if response.status_code == 202:
            assert response.json()["rejected"] == []
            tally.acknowledged.update(event["message_id"] for event in batch)
        elif response.status_code == 503:
            code = response.json()["error"]["code"]
            tally.codes[code] = tally.codes.get(code, 0) + 1
            tally.retry_after.add(response.headers.get("Retry-After", ""))
            tally.refused.append(batch)
        else:
            tally.other.append(f"{response.status_code} {response.text[:200]}")
    return response


def _flood(
    server: SextantServer,
    account: Account,
    tally: Tally,
    *,
    until: Callable[[Tally], bool],
    threads: int = 3,
    limit_seconds: float = 240,
) -> None:
    """Send batches from `threads` clients at once until `until(tally)` holds."""
    stop = threading.Event()
    deadline = time.monotonic() + limit_seconds

    def client(name: str) -> None:
        with httpx.Client(base_url=server.url, timeout=60.0) as http:
            number = 0
            while not stop.is_set() and time.monotonic() < deadline:
                _send(http, account, _batch(name, number), tally)
                number += 1
                if until(tally):
                    stop.set()

    workers = [
        threading.Thread(target=client, args=(f"c{n}-{secrets.token_hex(2)}",))
        for n in range(threads)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert until(tally), f"the disk never filled in {limit_seconds}s: {tally.codes}"


def _stored_ids(server: SextantServer, account: Account) -> tuple[set[str], int]:
    """The project's distinct message ids, and its row count as reports read it (FINAL),
    read from the stopped server's directory."""
    url = server.env["SEXTANT_EVENTS_URL"]
    ids = query_store(
        url,
        "SELECT DISTINCT message_id FROM events WHERE project_id = {p:UUID}",
        p=account.project_id,
    )
    final = query_store(
        url, "SELECT count() FROM events FINAL WHERE project_id = {p:UUID}", p=account.project_id
    )
    return {row[0] for row in ids}, int(final[0][0])


def _server(tmp_path: Path, fs: SmallFilesystem, **settings: str) -> SextantServer:
    return SextantServer(
        tmp_path / "server",
        events_url=f"chdb://{fs.path / 'events'}",
        disk_check_interval_seconds="0.5",
        # Views and background work are not what is measured here.
        rollups_enabled="false",
        **settings,
    )


def test_every_acknowledged_event_is_stored_when_the_disk_fills_up(tmp_path: Path) -> None:
    """No free-space floor: the engine itself runs out of space, and every flush it could
    not write must fail its requests."""
    with small_filesystem(40) as fs:
        server = _server(tmp_path, fs, ingest_min_free_disk_mb="0").start()
        try:
            account = server.bootstrap()
            tally = Tally()
            _flood(server, account, tally, until=lambda t: len(t.refused) >= 12)
            assert tally.other == []
            assert tally.codes.keys() <= {"store_write_failed", "low_disk_space"}, tally.codes
            assert "" not in tally.retry_after
            fs.grow(512)
        finally:
            server.stop()
        server.start()
        try:
            # The clients retry what was refused (same message ids): counted once.
            with httpx.Client(base_url=server.url, timeout=60.0) as http:
                retried = Tally()
                for batch in tally.refused:
                    assert _send(http, account, batch, retried).status_code == 202
        finally:
            server.stop()
        stored, final_rows = _stored_ids(server, account)
    missing = tally.acknowledged - stored
    print(
        f"\nfull disk (no floor): acknowledged {len(tally.acknowledged):,} events, refused "
        f"{len(tally.refused) * BATCH:,} ({tally.codes}), stored {len(stored):,}, "
        f"missing {len(missing):,}"
    )
    assert not missing, f"{len(missing)} acknowledged events were lost"
    sent = tally.acknowledged | retried.acknowledged
    assert stored == sent
    assert final_rows == len(sent)  # each retried event counted once


def test_ingestion_stops_before_the_disk_is_full_and_resumes_by_itself(tmp_path: Path) -> None:
    with small_filesystem(64) as fs:
        server = _server(tmp_path, fs, ingest_min_free_disk_mb="40").start()
        try:
            account = server.bootstrap()
            tally = Tally()
            _flood(server, account, tally, until=lambda t: t.codes.get("low_disk_space", 0) >= 3)
            assert tally.other == []
            assert tally.codes.get("store_write_failed", 0) == 0, tally.codes
            assert tally.retry_after
            assert "" not in tally.retry_after
            assert fs.free_bytes() > 16 * 1_048_576  # stopped well before the disk was full

            with httpx.Client(base_url=server.url, timeout=30.0) as http:
                refused = http.post(
                    "/api/v1/events",
                    headers={"X-API-Key": account.write_key},
                    json={"event": "late", "message_id": "late-1", "user_id": "u-1"},
                )
                assert refused.status_code == 503
                error = refused.json()["error"]
                assert error["code"] == "low_disk_space"
                assert "SEXTANT_INGEST_MIN_FREE_DISK_MB" in error["message"]
                assert int(refused.headers["Retry-After"]) >= 1

                ready = http.get("/health/ready")
                assert ready.status_code == 200  # still ready: reads are served
                body = ready.json()
                assert body["status"] == "degraded"
                store = {c["name"]: c for c in body["checks"]}["event_store"]
                assert store["status"] == "degraded"
                assert "free" in store["error"]
                disk = body["event_store_disk"]
                assert disk["accepting_events"] is False
                assert disk["free_bytes"] < disk["min_free_bytes"] == 40 * 1_048_576

                metrics = http.get("/metrics").text
                assert re.search(r'sextant_ingest_refused\{reason="low_disk_space"\} 1\.0', metrics)
                assert "sextant_event_store_disk_free_bytes" in metrics

                # Reads keep working while ingestion is refused.
                counted = http.post(
                    f"/api/v1/projects/{account.project_id}/query",
                    headers={"X-API-Key": account.read_key},
                    params={"fresh": "true"},
                    json={
                        "kind": "trends",
                        "date_from": "-1d",
                        "series": [{"event": "filled"}],
                    },
                )
                assert counted.status_code == 200, counted.text
                assert counted.json()["series"][0]["total"] == len(tally.acknowledged)

                fs.grow(256)  # the operator frees space: ingestion resumes by itself
                deadline = time.monotonic() + 15
                while True:
                    resumed = http.post(
                        "/api/v1/events",
                        headers={"X-API-Key": account.write_key},
                        json={"event": "late", "message_id": "late-1", "user_id": "u-1"},
                    )
                    if resumed.status_code == 202 or time.monotonic() > deadline:
                        break
                    time.sleep(0.2)
                assert resumed.status_code == 202, resumed.text
                assert http.get("/health/ready").json()["status"] == "ok"
        finally:
            server.stop()
        log = server.log_path.read_text()
        stored, _ = _stored_ids(server, account)
    assert "ingest_refused" in log
    assert "ingest_resumed" in log
    assert tally.acknowledged <= stored
    assert "late-1" in stored
    print(
        f"\nfree-space floor: acknowledged {len(tally.acknowledged):,} events, refused "
        f"{len(tally.refused) * BATCH:,} ({tally.codes}) with "
        f"{fs.size_mb} MB left for the store"
    )


def test_a_store_that_cannot_write_refuses_events_and_recovers(tmp_path: Path) -> None:
    """The store's parts directory turns read-only under a running server: nothing the
    store could not write is acknowledged, readiness says why, and ingestion recovers."""
    with small_filesystem(64) as fs:
        server = _server(tmp_path, fs, ingest_min_free_disk_mb="0").start()
        try:
            account = server.bootstrap()
            with httpx.Client(base_url=server.url, timeout=30.0) as http:

                def send(message_id: str) -> httpx.Response:
                    return http.post(
                        "/api/v1/events",
                        headers={"X-API-Key": account.write_key},
                        json={"event": "ro", "message_id": message_id, "user_id": "u-1"},
                    )

                assert send("before").status_code == 202
                with fs.read_only(fs.path / "events" / "store"):
                    refused = send("during")
                    assert refused.status_code == 503, refused.text
                    assert refused.json()["error"]["code"] == "store_write_failed"
                    assert "Retry-After" in refused.headers
                    ready = http.get("/health/ready")
                    assert ready.status_code == 200
                    store = {c["name"]: c for c in ready.json()["checks"]}["event_store"]
                    assert store["status"] == "degraded"
                    assert "writes have failed since" in store["error"]
                    assert "read-only" in store["error"].lower(), store["error"]
                assert send("after").status_code == 202
                assert http.get("/health/ready").json()["status"] == "ok"
        finally:
            server.stop()
        stored, _ = _stored_ids(server, account)
    assert {"before", "after"} <= stored
    assert "during" not in stored
