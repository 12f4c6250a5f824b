"""Normalising workers (ingest/pool.py): a body a worker prepared is stored exactly as one
the server prepared itself, errors are the same 400s, retries are still stored once, and a
worker that dies costs no request."""

from __future__ import annotations

import base64
import os
import signal
import time
from pathlib import Path
from typing import Any

import httpx
import orjson
from fastapi.testclient import TestClient

from sextant.ingest.pool import NormalizerPool
from sextant.sdk.testing import SextantServer, query_store

CHROME = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36"
)
# Compared column by column; these differ between two projects by construction (the IP
# hash is salted per project and day).
PER_PROJECT = {"project_id", "event_id", "received_at", "ip_hash"}


def _pool(client: TestClient) -> NormalizerPool:
    pool = client.app.state.ingest.pool  # type: ignore[attr-defined]
    assert isinstance(pool, NormalizerPool)
    return pool


def _wait_ready(client: TestClient, headers: dict[str, str]) -> NormalizerPool:
    """Workers start on the first large body; that one is prepared by the server."""
    pool = _pool(client)
    deadline = time.monotonic() + 60
    while not pool.ready:
        assert time.monotonic() < deadline, "the normalising workers did not start"
        client.post("/api/v1/events", content=orjson.dumps({"batch": []}), headers=headers)
        time.sleep(0.2)
    return pool


def _batch(tag: str) -> list[dict[str, Any]]:
    stamp = "2026-11-30T12:00:00.000Z"
    events: list[dict[str, Any]] = []
    for i in range(40):  # fast-path events: page views and tracks from a browser
        events.append(
            {
                "type": "page" if i % 3 == 0 else "track",
                "event": f"clicked_{i % 4}",
                "anonymous_id": f"anon-{i % 7}",
                "message_id": f"{tag}-m{i}",
                "timestamp": stamp,
                "properties": {"i": i, "tag": "x"},
                "context": {
                    "page": {
                        "url": f"https://shop.example/p/{i % 5}?utm_source=mail&gclid=g{i % 2}",
                        "referrer": "https://www.google.com/search?q=a",
                        "title": "Shop",
                    },
                    "userAgent": CHROME,
                    "ip": f"81.2.69.{i % 9}",
                    "locale": "en-GB",
                    "screen": {"width": 1440, "height": 900},
                },
            }
        )
    events += [
        # the row path: identify (a person link), an API call, a Web3 transfer
        {"type": "identify", "anonymous_id": "anon-1", "user_id": "u-1", "message_id": f"{tag}-i"},
        {
            "type": "api",
            "user_id": "u-1",
            "message_id": f"{tag}-a",
            "api": {"method": "GET", "route": "/items/{id}", "status": 503, "duration_ms": 12.5},
        },
        {
            "type": "web3",
            "event": "transfer",
            "user_id": "u-1",
            "message_id": f"{tag}-w",
            "web3": {
                "chain_id": 1,
                "wallet": "0x52908400098527886e0f7030069857d2e4169ee7",
                "value": "1000000000000000000000",
            },
        },
        # rejected: no id, and a bad timestamp
        {"type": "track", "event": "no_id", "message_id": f"{tag}-bad1"},
        {"event": "late", "anonymous_id": "a", "timestamp": "soon", "message_id": f"{tag}-bad2"},
        # the same message twice in one request: stored once
        {"event": "twice", "anonymous_id": "anon-2", "message_id": f"{tag}-m0"},
    ]
    for event in events:
        event.setdefault("timestamp", stamp)  # the same rows from two requests
    return events


def _rows(stored: Any, project_id: str, tag: str) -> list[dict[str, Any]]:
    rows = stored.events(project_id)
    out = []
    for row in rows:
        kept = {k: v for k, v in row.items() if k not in PER_PROJECT}
        kept["message_id"] = str(kept["message_id"]).removeprefix(tag)
        out.append(kept)
    return sorted(out, key=lambda r: r["message_id"])


def test_a_worker_stores_what_the_server_stores(
    make_client: Any, bootstrap: Any, stored: Any
) -> None:
    pooled = make_client(ingest_workers=1, ingest_worker_min_bytes=0)
    local = make_client(ingest_workers=0)
    in_pool, in_server = bootstrap(pooled), bootstrap(local)
    headers_pool = {"X-API-Key": in_pool["write_key"]}
    pool = _wait_ready(pooled, headers_pool)
    answers = []
    for client, account, tag in ((pooled, in_pool, "P"), (local, in_server, "S")):
        response = client.post(
            "/api/v1/events",
            content=orjson.dumps({"batch": _batch(tag), "context": {"locale": "de-DE"}}),
            headers={"X-API-Key": account["write_key"], "User-Agent": CHROME},
        )
        assert response.status_code == 202, response.text
        answers.append(response.json())
    assert pool.prepared >= 1
    assert answers[0] == answers[1]
    assert answers[0]["accepted"] == 44  # the repeated message id is stored once
    assert [r["index"] for r in answers[0]["rejected"]] == [43, 44]
    from_pool = _rows(stored, in_pool["project_id"], "P")
    from_server = _rows(stored, in_server["project_id"], "S")
    assert len(from_pool) == 43
    for a, b in zip(from_pool, from_server, strict=True):
        assert a == b, {k: (a[k], b[k]) for k in a if a[k] != b[k]}
    web3 = next(r for r in from_pool if r["message_id"] == "-w")
    assert web3["wallet_address"] == "0x52908400098527886E0F7030069857D2E4169EE7"
    assert str(web3["tx_value"]) == "1000000000000000000000"
    page = next(r for r in from_pool if r["message_id"] == "-m3")
    assert (page["browser"], page["utm_source"], page["referrer_domain"]) == (
        "Chrome",
        "mail",
        "google.com",
    )
    assert page["ip"] == ""
    hashes = stored.events(in_pool["project_id"], "message_id = 'P-m3'")
    assert len(hashes[0]["ip_hash"]) == 32
    assert stored.aliases(in_pool["project_id"]) == {"anon-1": "u-1"}


def test_worker_errors_are_the_servers_400s(make_client: Any, bootstrap: Any) -> None:
    client = make_client(ingest_workers=1, ingest_worker_min_bytes=0, ingest_max_batch_events=50)
    account = bootstrap(client)
    headers = {"X-API-Key": account["write_key"]}
    pool = _wait_ready(client, headers)
    before = pool.prepared
    cases = [
        (b'{"batch": [{"event": "a",}]}', "invalid_json", "line 1, column"),
        (b'{"batch": {"event": "a"}}', "validation_error", "batch: must be an array"),
        (
            orjson.dumps({"batch": [{"event": "e", "anonymous_id": "a"}] * 51}),
            "batch_too_large",
            "at most 50 events",
        ),
        (orjson.dumps({"event": "e"}), "validation_error", "invalid event"),
        (
            orjson.dumps({"batch": [{"event": "e", "anonymous_id": "a"}], "context": 3}),
            "validation_error",
            "context: must be an object",
        ),
    ]
    for body, code, message in cases:
        response = client.post("/api/v1/events", content=body, headers=headers)
        assert response.status_code == 400, response.text
        error = response.json()["error"]
        assert error["code"] == code
        assert message in error["message"]
    assert pool.prepared == before + len(cases)


def test_a_retried_batch_through_a_worker_is_stored_once(
    make_client: Any, bootstrap: Any, stored: Any
) -> None:
    client = make_client(ingest_workers=1, ingest_worker_min_bytes=0)
    account = bootstrap(client)
    headers = {"X-API-Key": account["write_key"]}
    pool = _wait_ready(client, headers)
    body = orjson.dumps({"batch": _batch("R")})
    first = client.post("/api/v1/events", content=body, headers=headers)
    retry = client.post("/api/v1/events", content=body, headers=headers)
    assert first.status_code == retry.status_code == 202
    assert first.json() == retry.json()
    assert pool.prepared >= 2
    assert stored.count(account["project_id"]) == 43
    assert stored.count(account["project_id"], final=False) == 43  # not even a second row


def test_a_dead_worker_costs_no_request(make_client: Any, bootstrap: Any, stored: Any) -> None:
    client = make_client(ingest_workers=1, ingest_worker_min_bytes=0)
    account = bootstrap(client)
    headers = {"X-API-Key": account["write_key"]}
    pool = _wait_ready(client, headers)
    (pid,) = pool.pids
    os.kill(pid, signal.SIGKILL)
    accepted = 0
    for n in range(3):
        response = client.post(
            "/api/v1/events", content=orjson.dumps({"batch": _batch(f"D{n}-")}), headers=headers
        )
        assert response.status_code == 202, response.text
        accepted += response.json()["accepted"]
    assert accepted == 3 * 44
    assert stored.count(account["project_id"]) == 3 * 43
    # The pool starts again, in new processes, and takes bodies again.
    pool = _wait_ready(client, headers)
    assert pool.pids
    assert pid not in pool.pids
    before = pool.prepared
    response = client.post(
        "/api/v1/events", content=orjson.dumps({"batch": _batch("D9-")}), headers=headers
    )
    assert response.status_code == 202
    assert pool.prepared == before + 1
    assert stored.count(account["project_id"]) == 4 * 43


def _workers_of(pid: int) -> list[int]:
    """The normalising workers among a process's children (from /proc)."""
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        for child in (task / "children").read_text().split():
            cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
            if b"spawn_main" in cmdline:
                found.append(int(child))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def test_a_killed_servers_workers_exit_and_its_acknowledged_batches_are_stored(
    tmp_path: Path,
) -> None:
    server = SextantServer(tmp_path / "server", ingest_workers="1", ingest_worker_min_bytes="0")
    acked: list[str] = []
    try:
        server.start()
        account = server.bootstrap()
        url = f"{server.url}/api/v1/events"
        headers = {"X-API-Key": account.write_key}
        deadline = time.monotonic() + 60
        n = 0
        while True:
            batch = _batch(f"K{n}-")
            response = httpx.post(url, content=orjson.dumps({"batch": batch}), headers=headers)
            assert response.status_code == 202, response.text
            acked += [e["message_id"] for e in batch if not e["message_id"].endswith("bad1")]
            n += 1
            metrics = httpx.get(f"{server.url}/metrics").text
            if 'sextant_ingest_pooled_requests_total{where="worker"} 2.0' in metrics:
                break
            assert time.monotonic() < deadline, "no request was prepared by a worker"
            time.sleep(0.2)
        assert server.process is not None
        workers = _workers_of(server.process.pid)
        assert len(workers) == 1
        os.kill(server.process.pid, signal.SIGKILL)
        server.process.wait()
        server.process = None
        deadline = time.monotonic() + 15
        while any(_alive(pid) for pid in workers):
            assert time.monotonic() < deadline, "a worker outlived its server"
            time.sleep(0.2)
    finally:
        server.stop()
    stored = query_store(
        server.env["SEXTANT_EVENTS_URL"],
        "SELECT DISTINCT message_id FROM events FINAL WHERE project_id = {p:UUID}",
        p=account.project_id,
    )
    expected = {mid for mid in acked if not mid.endswith("bad2")}
    assert {row[0] for row in stored} == expected


def _segment_batch(tag: str) -> list[dict[str, Any]]:
    """Segment messages of every kind the typed path and the dict path take."""
    stamp = "2026-11-30T12:00:00.000Z"
    messages: list[dict[str, Any]] = [
        {
            "type": "track" if i % 2 else "page",
            "event": f"Clicked {i % 3}",
            "anonymousId": f"anon-{i % 5}",
            "messageId": f"{tag}-s{i}",
            "timestamp": stamp,
            "properties": {"i": i, "url": f"https://shop.example/p/{i % 4}?utm_medium=cpc"},
            "context": {
                "userAgent": CHROME,
                "ip": f"81.2.69.{i % 6}",
                "page": {"url": f"https://shop.example/p/{i % 4}?utm_medium=cpc"},
                "library": {"name": "analytics-python", "version": "2.3.4"},
            },
        }
        for i in range(30)
    ]
    messages += [
        {"type": "identify", "anonymousId": "anon-1", "userId": "u-1", "messageId": f"{tag}-i"},
        {"type": "alias", "previousId": "old-1", "userId": "u-1", "messageId": f"{tag}-al"},
        {"type": "track", "userId": "u-1", "messageId": f"{tag}-no-event"},  # rejected
    ]
    for message in messages:
        message.setdefault("timestamp", stamp)  # the same rows from two requests
    return messages


def test_a_worker_stores_segment_batches_as_the_server_does(
    make_client: Any, bootstrap: Any, stored: Any
) -> None:
    pooled = make_client(ingest_workers=1, ingest_worker_min_bytes=0)
    local = make_client(ingest_workers=0)
    in_pool, in_server = bootstrap(pooled), bootstrap(local)
    pool = _wait_ready(pooled, {"X-API-Key": in_pool["write_key"]})
    before = pool.prepared
    answers: dict[str, list[Any]] = {"P": [], "S": []}
    for client, account, tag in ((pooled, in_pool, "P"), (local, in_server, "S")):
        key = account["write_key"]
        basic = {"Authorization": "Basic " + base64.b64encode(f"{key}:".encode()).decode()}
        bodies = [
            # the typed path, key in a header (as segment-analytics-python sends it); no
            # sentAt: with one, times follow each request's own receive time
            ({"batch": _segment_batch(f"{tag}1")}, basic),
            # the key in the body only
            ({"batch": _segment_batch(f"{tag}2"), "writeKey": key}, {}),
            # a batch context: the dict path
            ({"batch": _segment_batch(f"{tag}3"), "context": {"locale": "fr-FR"}}, basic),
        ]
        for body, headers in bodies:
            response = client.post("/v1/batch", content=orjson.dumps(body), headers=headers)
            assert response.status_code == 200, response.text
            answers[tag].append(response.json())
        bad = client.post("/v1/batch", content=b'{"batch": [}', headers=basic)
        assert bad.status_code == 400
        answers[tag].append(bad.json()["error"])
    assert pool.prepared == before + 4  # three batches and the malformed body
    assert answers["P"] == answers["S"]
    assert [a["accepted"] for a in answers["P"][:3]] == [32, 32, 32]
    assert answers["P"][0]["rejected"][0]["index"] == 32
    assert "line 1, column" in answers["P"][3]["message"]
    from_pool = _rows(stored, in_pool["project_id"], "P")
    from_server = _rows(stored, in_server["project_id"], "S")
    assert len(from_pool) == 96
    for a, b in zip(from_pool, from_server, strict=True):
        assert a == b, {k: (a[k], b[k]) for k in a if a[k] != b[k]}
    track = next(r for r in from_pool if r["message_id"] == "1-s3")
    assert (track["browser"], track["utm_medium"], track["library"]) == (
        "Chrome",
        "cpc",
        "analytics-python",
    )
    assert next(r for r in from_pool if r["message_id"] == "3-s3")["locale"] == "fr-FR"
    assert stored.aliases(in_pool["project_id"]) == {"anon-1": "u-1", "old-1": "u-1"}


def test_a_worker_rejects_an_event_nested_too_deeply_as_the_server_does(
    make_client: Any, bootstrap: Any, stored: Any
) -> None:
    pooled = make_client(ingest_workers=1, ingest_worker_min_bytes=0)
    local = make_client(ingest_workers=0)
    in_pool, in_server = bootstrap(pooled), bootstrap(local)
    pool = _wait_ready(pooled, {"X-API-Key": in_pool["write_key"]})
    before = pool.prepared
    for depth in (1000, 5000):
        deep = '{"a":' * depth + "1" + "}" * depth
        events = [
            f'{{"event":"ok","anonymous_id":"a","message_id":"d{depth}-{i}"}}' for i in range(11)
        ]
        events.insert(4, f'{{"event":"deep","anonymous_id":"a","properties":{deep}}}')
        body = ('{"batch":[' + ",".join(events) + "]}").encode()
        answers = [
            client.post("/api/v1/events", content=body, headers={"X-API-Key": a["write_key"]})
            for client, a in ((pooled, in_pool), (local, in_server))
        ]
        assert [a.status_code for a in answers] == [202, 202]
        assert answers[0].json() == answers[1].json()
        assert answers[0].json()["accepted"] == 11
        assert [r["index"] for r in answers[0].json()["rejected"]] == [4]
    assert pool.prepared == before + 2
    assert stored.count(in_pool["project_id"]) == stored.count(in_server["project_id"]) == 22
