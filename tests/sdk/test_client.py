"""The Python client against a real Sextant server (subprocess), plus its queue and retry rules."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from sextant.sdk import Client
from sextant.sdk.client import retry_after_seconds
from sextant.sdk.testing import Account, SextantServer


def test_events_arrive_with_their_fields(sextant_server: SextantServer, account: Account) -> None:
    client = Client(account.write_key, sextant_server.url, flush_interval=0.05)
    anon = "anon-sdk-1"
    client.page(
        "https://shop.example.com/pricing?utm_source=newsletter",
        title="Pricing",
        referrer="https://www.google.com/",
        anonymous_id=anon,
    )
    client.identify("user-sdk-1", {"email": "ada@example.com", "plan": "pro"}, anonymous_id=anon)
    client.track("signup", {"plan": "pro", "seats": 3}, user_id="user-sdk-1")
    client.alias("legacy-id-7", "user-sdk-1")
    past = datetime.now(UTC) - timedelta(days=3)
    client.track("imported", user_id="user-sdk-1", timestamp=past)
    assert client.flush(timeout=30)
    client.shutdown()
    assert client.stats.sent == 5
    assert client.stats.failed == client.stats.dropped == 0

    events = sextant_server.wait_for_events(account, expected=5)
    by_name = {e["event"]: e for e in events}
    assert set(by_name) == {"$pageview", "$identify", "signup", "$alias", "imported"}
    page = by_name["$pageview"]
    assert page["path"] == "/pricing"
    assert page["utm_source"] == "newsletter"
    assert page["referrer_domain"] == "google.com"
    assert page["library"] == "sextant-python"
    assert by_name["signup"]["properties"] == {"plan": "pro", "seats": 3}
    assert by_name["signup"]["user_id"] == "user-sdk-1"
    imported_at = datetime.fromisoformat(by_name["imported"]["timestamp"])
    assert abs((imported_at - past).total_seconds()) < 5

    # identify linked the anonymous page view to the user: one person, both ids.
    person = httpx.get(
        f"{sextant_server.url}/api/v1/projects/{account.project_id}/persons/{anon}",
        headers={"X-API-Key": account.read_key},
        params={"fresh": "true"},
        timeout=30,
    ).json()
    assert {"anon-sdk-1", "user-sdk-1"} <= set(person["distinct_ids"])
    traits = by_name["$identify"]["properties"]
    assert traits.get("$traits", traits)["email"] == "ada@example.com"


def test_rate_limited_batches_are_retried_until_stored(tmp_path: Path) -> None:
    # A limit of one request per second per key: every batch after the first gets a 429
    # with Retry-After, and the client must wait and send it again.
    with SextantServer(tmp_path, ingest_rate_limit="1/second") as server:
        account = server.bootstrap()
        client = Client(account.write_key, server.url, batch_size=1, flush_interval=0.01)
        for n in range(4):
            client.track("tick", {"n": n}, anonymous_id="rate-limited")
        assert client.flush(timeout=60)
        client.shutdown()
        assert client.stats.retries >= 1
        assert client.stats.sent == 4
        assert client.stats.failed == 0
        events = server.wait_for_events(account, expected=4)
        assert sorted(e["properties"]["n"] for e in events) == [0, 1, 2, 3]


def test_rejected_key_is_not_retried(sextant_server: SextantServer) -> None:
    client = Client("sx_w_not-a-real-key", sextant_server.url, flush_interval=0.01)
    errors: list[object] = []
    client.on_error = lambda error, batch: errors.append(error)
    client.track("anything", anonymous_id="a")
    assert client.flush(timeout=30)
    client.shutdown()
    assert client.stats.failed == 1
    assert client.stats.retries == 0
    assert isinstance(errors[0], httpx.Response)
    assert errors[0].status_code == 401


def test_full_queue_drops_and_counts_without_blocking() -> None:
    entered = threading.Event()
    release = threading.Event()
    received: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        entered.set()
        release.wait(10)
        received.append(len(json.loads(request.content)["batch"]))
        return httpx.Response(202, json={"accepted": received[-1], "rejected": []})

    client = Client(
        "sx_w_test",
        "http://sextant.invalid",
        max_queue_size=2,
        batch_size=1,
        flush_interval=0.01,
        transport=httpx.MockTransport(handler),
    )
    client.track("first", anonymous_id="a")
    assert entered.wait(10)  # the worker is now busy sending "first"
    for n in range(5):
        client.track("more", {"n": n}, anonymous_id="a")
    assert client.stats.dropped == 3  # the queue holds two; the rest was dropped, counted
    release.set()
    assert client.flush(timeout=10)
    client.shutdown()
    assert client.stats.sent == 3
    assert sum(received) == 3


def test_server_errors_back_off_and_honour_retry_after() -> None:
    answers = [
        httpx.Response(503, headers={"Retry-After": "0"}),
        httpx.Response(500),
        httpx.Response(202, json={"accepted": 1, "rejected": []}),
    ]
    calls: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request.headers["X-API-Key"])
        return answers[len(calls) - 1]

    client = Client(
        "sx_w_test",
        "http://sextant.invalid",
        flush_interval=0.01,
        backoff_base=0.01,
        transport=httpx.MockTransport(handler),
    )
    client.track("x", anonymous_id="a")
    assert client.flush(timeout=10)
    client.shutdown()
    assert len(calls) == 3
    assert client.stats.retries == 2
    assert client.stats.sent == 1


def test_retry_after_parsing() -> None:
    assert retry_after_seconds("3") == 3.0
    assert retry_after_seconds(None) is None
    assert retry_after_seconds("soon") is None
    later = (datetime.now(UTC) + timedelta(seconds=30)).strftime("%a, %d %b %Y %H:%M:%S GMT")
    parsed = retry_after_seconds(later)
    assert parsed is not None
    assert 25 <= parsed <= 31


def test_calls_validate_their_arguments() -> None:
    with pytest.raises(ValueError, match="write_key"):
        Client("", "http://x")
    client = Client("sx_w_test", "http://sextant.invalid", enabled=False)
    with pytest.raises(ValueError, match="user_id or anonymous_id"):
        client.track("x")
    with pytest.raises(ValueError, match="event name"):
        client.track("", user_id="u")
    client.shutdown()


def test_queued_events_are_flushed_at_interpreter_exit(
    sextant_server: SextantServer, account: Account
) -> None:
    # A script that tracks and exits at once, without flush(): the atexit hook sends it.
    script = (
        "import sys\n"
        "from sextant.sdk import Client\n"
        "client = Client(sys.argv[1], sys.argv[2], flush_interval=60)\n"
        "for n in range(3):\n"
        "    client.track('exit_event', {'n': n}, anonymous_id='short-lived')\n"
    )
    subprocess.run(
        [sys.executable, "-c", script, account.write_key, sextant_server.url],
        check=True,
        timeout=60,
    )
    events = sextant_server.wait_for_events(account, expected=3)
    assert sorted(e["properties"]["n"] for e in events) == [0, 1, 2]
