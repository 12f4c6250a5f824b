"""The analytics HTTP API: authorisation, caching, errors, convenience endpoints, live view."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient

from sextant.analytics import queries
from sextant.analytics.schemas import TrendsQuery
from sextant.core.errors import BadRequest

Factory = Callable[..., Any]
RANGE = {"date_from": "2026-11-10", "date_to": "2026-11-10"}


@pytest.fixture
def shop(dataset: Factory, project: dict[str, Any]) -> Any:
    """The `project` fixture's project with a few events of every domain on 2026-11-10."""
    d = dataset("UTC", project["id"])
    d.track(
        "$pageview",
        "anon-1",
        "2026-11-10 10:00:00",
        path="/",
        browser="Chrome",
        country="DE",
        referrer_domain="news.ycombinator.com",
        utm_source="hn",
    )
    d.track(
        "$pageview",
        "user-2",
        "2026-11-10 10:30:00",
        path="/pricing",
        browser="Safari",
        country="US",
    )
    d.track("signup", "user-2", "2026-11-10 10:31:00", browser="Safari")
    d.track(
        "$api_request",
        "svc",
        "2026-11-10 11:00:00",
        type="api",
        http_method="GET",
        http_route="/v1/items",
        http_status=200,
        duration_ms=20.0,
    )
    d.track(
        "$api_request",
        "svc",
        "2026-11-10 11:00:30",
        type="api",
        http_method="POST",
        http_route="/v1/orders",
        http_status=503,
        duration_ms=80.0,
    )
    d.track(
        "tx",
        "user-2",
        "2026-11-10 12:00:00",
        type="web3",
        tx_hash="0xabc",
        chain_id=1,
        token_symbol="ETH",
        tx_value=10**30,
        tx_status="success",
        wallet_address="0xW",
    )
    return d


def _key(read_key: str) -> dict[str, str]:
    return {"X-API-Key": read_key}


def test_query_needs_a_read_credential(
    client: TestClient, project: dict[str, Any], read_key: str, write_key: str, auth: Any
) -> None:
    url = f"/api/v1/projects/{project['id']}/query"
    body = {"kind": "trends", **RANGE}
    assert client.post(url, json=body).status_code == 401
    assert client.post(url, json=body, headers={"X-API-Key": write_key}).status_code == 401
    assert client.post(url, json=body, headers=_key(read_key)).status_code == 200
    assert client.post(url, json=body, headers=auth["headers"]).status_code == 200
    other = f"/api/v1/projects/{'0' * 8}-0000-4000-8000-{'0' * 12}/query"
    assert client.post(other, json=body, headers=_key(read_key)).status_code == 404


def test_results_are_cached_until_fresh_is_asked(
    client: TestClient, project: dict[str, Any], read_key: str, shop: Any
) -> None:
    url = f"/api/v1/projects/{project['id']}/query"
    body = {"kind": "trends", **RANGE, "interval": "hour"}
    first = client.post(url, json=body, headers=_key(read_key)).json()
    assert first["cached"] is False
    assert first["series"][0]["total"] == 6
    assert first["interval"] == "hour"
    assert first["date_from"] == "2026-11-10T00:00:00+00:00"
    assert first["date_to"] == "2026-11-11T00:00:00+00:00"
    # A new event: the cached answer may be stale (up to the TTL) until fresh=true.
    shop.track("late", "x", "2026-11-10 13:00:00")
    second = client.post(url, json=body, headers=_key(read_key)).json()
    assert second["cached"] is True
    assert second["generated_at"] == first["generated_at"]
    assert second["series"][0]["total"] == 6
    # The same query with keys in another order is the same cache entry.
    reordered = dict(reversed(list(body.items())))
    assert client.post(url, json=reordered, headers=_key(read_key)).json()["cached"] is True
    fresh = client.post(url + "?fresh=true", json=body, headers=_key(read_key)).json()
    assert fresh["cached"] is False
    assert fresh["series"][0]["total"] == 7


def test_invalid_queries_answer_4xx_naming_the_field(
    client: TestClient, project: dict[str, Any], read_key: str
) -> None:
    base = f"/api/v1/projects/{project['id']}"
    h = _key(read_key)
    r = client.post(f"{base}/query", json={"kind": "nope"}, headers=h)
    assert r.status_code == 422
    assert "kind" in r.text
    r = client.post(
        f"{base}/query",
        json={"kind": "trends", "filters": [{"property": "properties.a;DROP", "value": 1}]},
        headers=h,
    )
    assert r.status_code == 422
    assert "invalid property name" in r.json()["error"]["message"]
    r = client.post(
        f"{base}/query",
        json={"kind": "trends", "breakdown": {"property": "password_hash"}},
        headers=h,
    )
    assert r.status_code == 422
    assert "unknown column 'password_hash'" in r.json()["error"]["message"]
    r = client.post(
        f"{base}/query", json={"kind": "trends", "filters": [{"property": "project_id"}]}, headers=h
    )
    assert r.status_code == 422
    r = client.post(f"{base}/query", json={"kind": "trends", "date_from": "yesterday"}, headers=h)
    assert r.status_code == 400
    assert r.json()["error"]["message"].startswith("date_from:")
    r = client.post(
        f"{base}/query",
        json={"kind": "trends", "date_from": "-90d", "interval": "minute"},
        headers=h,
    )
    assert r.status_code == 400
    assert r.json()["error"]["message"].startswith("interval:")
    r = client.get(f"{base}/stats/summary?filters=[{{", headers=h)
    assert r.status_code == 422
    assert r.json()["error"]["details"][0]["field"].startswith("query.filters")
    r = client.get(f"{base}/stats/breakdown/secret_column", headers=h)
    assert r.status_code == 422
    assert "query.property" in r.text
    r = client.get(f"{base}/stats/timeseries?interval=fortnight", headers=h)
    assert r.status_code == 422
    assert client.get(f"{base}/events/not-a-uuid", headers=h).status_code == 422


def test_too_expensive_queries_answer_400(
    client: TestClient,
    project: dict[str, Any],
    read_key: str,
    shop: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(queries.QUERY_SETTINGS, "max_rows_to_read", 1)
    r = client.post(
        f"/api/v1/projects/{project['id']}/query?fresh=true",
        json={"kind": "trends", **RANGE},
        headers=_key(read_key),
    )
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "query_too_expensive"
    assert "query too expensive" in r.json()["error"]["message"]


def test_convenience_endpoints(
    client: TestClient, project: dict[str, Any], read_key: str, shop: Any
) -> None:
    base = f"/api/v1/projects/{project['id']}"
    h = _key(read_key)
    q = "date_from=2026-11-10&date_to=2026-11-10"

    summary = client.get(f"{base}/stats/summary?{q}", headers=h).json()
    assert summary["total_events"] == 6
    assert summary["unique_users"] == 3
    assert summary["comparison"]["total_events"]["change"] == "new"
    assert [p["value"] for p in summary["top_pages"]] == ["/", "/pricing"]
    assert {c["value"] for c in summary["countries"]} >= {"DE", "US"}
    assert summary["referrers"][0]["previous_events"] == 0

    ts = client.get(f"{base}/stats/timeseries?{q}&interval=hour&event=$pageview", headers=h).json()
    assert ts["series"][0]["label"] == "events"
    assert ts["series"][0]["data"][10]["value"] == 2
    assert len(ts["series"][0]["data"]) == 24

    bd = client.get(f"{base}/stats/breakdown/browsers?{q}", headers=h).json()
    assert bd["dimension"] == "browser"
    assert [r["value"] for r in bd["results"]] == ["", "Safari", "Chrome"]
    assert bd["results"][1] == {
        "value": "Safari",
        "events": 2,
        "unique_users": 1,
        "previous_events": 0,
        "previous_unique_users": 0,
        "change_pct": None,
    }
    filtered = client.get(
        f"{base}/stats/breakdown/country?{q}&filters="
        + '[{"property":"browser","op":"eq","value":"Chrome"}]',
        headers=h,
    ).json()
    assert [r["value"] for r in filtered["results"]] == ["DE"]

    person = client.get(f"{base}/persons/user-2", headers=h).json()
    assert person["total_events"] == 3
    assert client.get(f"{base}/persons/nobody", headers=h).status_code == 404

    feed = client.get(f"{base}/events?{q}&limit=2", headers=h).json()
    assert [e["event"] for e in feed["results"]] == ["tx", "$api_request"]
    assert feed["results"][0]["tx_value"] == str(10**30)
    page2 = client.get(f"{base}/events?{q}&limit=2&cursor={feed['next_cursor']}", headers=h)
    assert [e["event"] for e in page2.json()["results"]] == ["$api_request", "signup"]
    one = client.get(f"{base}/events/{feed['results'][0]['event_id']}", headers=h).json()
    assert one["tx_hash"] == "0xabc"
    missing = client.get(f"{base}/events/00000000-0000-4000-8000-000000000000", headers=h)
    assert missing.status_code == 404

    api = client.get(f"{base}/api-metrics/summary?{q}", headers=h).json()
    assert api["request_count"] == 2
    assert api["error_count"] == 1
    assert api["error_rate"] == 50.0
    assert api["max"] == 80.0
    assert api["p50"] == 50.0
    assert api["requests_per_minute"] == pytest.approx(2 / 1440, abs=1e-4)
    endpoints = client.get(f"{base}/api-metrics/endpoints?{q}&sort=p95", headers=h).json()
    assert [e["route"] for e in endpoints["endpoints"]] == ["/v1/orders", "/v1/items"]
    series = client.get(f"{base}/api-metrics/timeseries?{q}&interval=hour", headers=h).json()
    assert series["series"][11]["request_count"] == 2

    web3 = client.get(f"{base}/web3/summary?{q}", headers=h).json()
    assert web3["volume"][0]["volume"] == str(10**30)

    retention = client.get(f"{base}/retention?{q}", headers=h).json()
    assert retention["cohorts"][0]["persons"] == 3

    realtime = client.get(f"{base}/stats/realtime", headers=h).json()
    assert realtime["visitors"] == 0
    assert "cached" in realtime


def test_realtime_counts_the_last_minutes(
    client: TestClient, project: dict[str, Any], read_key: str, dataset: Factory
) -> None:
    d = dataset("UTC", project["id"])
    now = datetime.now(UTC)
    d.track("$pageview", "v1", now - timedelta(minutes=1), path="/live")
    d.track("$pageview", "v2", now - timedelta(minutes=2), path="/live")
    d.track("$pageview", "v3", now - timedelta(minutes=30), path="/old")
    out = client.get(f"/api/v1/projects/{project['id']}/stats/realtime", headers=_key(read_key))
    body = out.json()
    assert body["visitors"] == 2
    assert body["pages"] == [{"path": "/live", "views": 2, "visitors": 2}]


def test_live_streams_new_events_as_sse(
    client: TestClient, project: dict[str, Any], read_key: str, dataset: Factory
) -> None:
    mine = dataset("UTC", project["id"])
    other = dataset("UTC")
    now = datetime.now(UTC)
    mine.track("old_event", "a", now - timedelta(hours=1))
    mine.track("$pageview", "a", now, path="/live")
    other.track("not_mine", "b", now)
    url = f"/api/v1/projects/{project['id']}/live?max_seconds=1.5"
    with client.stream("GET", url, headers=_key(read_key)) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        text = "".join(response.iter_text())
    assert text.startswith(": connected")
    events = [
        orjson.loads(line[len("data: ") :])
        for line in text.splitlines()
        if line.startswith("data: ")
    ]
    assert [e["event"] for e in events] == ["$pageview"]
    assert events[0]["path"] == "/live"
    assert events[0]["replayed"] is True  # received before the stream opened
    assert "event: event" in text


def test_live_stream_gets_past_a_burst_larger_than_a_page(
    client: TestClient, project: dict[str, Any], read_key: str, dataset: Factory
) -> None:
    # 450 events received within the look-back window (more than two pages of 200), then one
    # that arrives a second after the stream opened: every one is sent once, in order.
    mine = dataset("UTC", project["id"])
    now = datetime.now(UTC)
    burst = [
        mine.event("burst", f"v{i}", now - timedelta(seconds=2), received_at=now)
        for i in range(450)
    ]
    late = mine.event("after_burst", "w", now, received_at=now + timedelta(seconds=1))
    mine.add(*burst, late)
    url = f"/api/v1/projects/{project['id']}/live?max_seconds=2.5"
    with client.stream("GET", url, headers=_key(read_key)) as response:
        text = "".join(response.iter_text())
    events = [
        orjson.loads(line[len("data: ") :])
        for line in text.splitlines()
        if line.startswith("data: ")
    ]
    names = [e["event"] for e in events]
    assert names.count("burst") == 450
    assert names[-1] == "after_burst"
    assert len({e["event_id"] for e in events}) == 451
    assert events[-1]["replayed"] is False


def test_every_query_carries_time_and_memory_limits(app: Any, dataset: Factory) -> None:
    service = app.state.analytics
    assert service.limits == {
        "max_execution_time": app.state.settings.query_timeout_seconds,
        "max_memory_usage": app.state.settings.query_max_memory_bytes,
    }
    d = dataset()
    d.track("x", "a", "2026-11-10 10:00:00")
    tight = type(service)(
        store=d.store,
        cache=service.cache,
        ttl_seconds=0,
        clock=d.service.clock,
        limits={"max_memory_usage": 1},
    )
    with pytest.raises(BadRequest) as info:
        tight.execute(d.ctx, TrendsQuery(kind="trends", **RANGE))
    assert info.value.code == "query_too_expensive"


def test_integers_beyond_64_bits_in_a_query_are_answered(
    client: TestClient, read_key: str, project: dict[str, Any]
) -> None:
    """Found by fuzzing: the query cache's key could not encode them (500)."""
    headers = {"X-API-Key": read_key}
    response = client.post(
        f"/api/v1/projects/{project['id']}/query",
        json={
            "kind": "trends",
            "filters": [{"property": "tx_value", "op": "gt", "value": 2**70}],
        },
        headers=headers,
    )
    assert response.status_code == 200, response.text
    for params, status in (
        ({"date_from": "-99999y"}, 200),  # since 1970: everything
        ({"date_from": "0001-01-01"}, 200),
        ({"date_from": "-7d", "date_to": "9999-12-31"}, 400),
    ):
        response = client.get(
            f"/api/v1/projects/{project['id']}/stats/summary", params=params, headers=headers
        )
        assert response.status_code == status, response.text
