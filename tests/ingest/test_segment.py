"""Segment HTTP Tracking API: `/v1/track|identify|page|screen|group|alias|batch`."""

from __future__ import annotations

import base64
import datetime as dt
from typing import Any

import orjson
from fastapi.testclient import TestClient


def basic(key: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{key}:".encode()).decode()}


def test_every_call_type_with_basic_auth(
    client: TestClient, write_key: str, project: dict[str, Any], stored: Any
) -> None:
    calls = {
        "track": {"userId": "u1", "event": "Order Completed", "properties": {"total": 9.5}},
        "identify": {"userId": "u1", "anonymousId": "a1", "traits": {"email": "u1@example.com"}},
        "page": {
            "anonymousId": "a1",
            "name": "Pricing",
            "properties": {"url": "https://shop.example/pricing", "referrer": "https://t.co/x"},
        },
        "screen": {"userId": "u1", "name": "Home"},
        "group": {"userId": "u1", "groupId": "acme", "traits": {"plan": "team"}},
        "alias": {"previousId": "old-id", "userId": "u1"},
    }
    for kind, body in calls.items():
        response = client.post(f"/v1/{kind}", json=body, headers=basic(write_key))
        assert response.status_code == 200, (kind, response.text)
        assert response.json()["success"] is True
    rows = {r["type"]: r for r in stored.events(project["id"])}
    assert set(rows) == set(calls)
    assert rows["track"]["event"] == "Order Completed"
    assert orjson.loads(rows["track"]["properties"]) == {"total": 9.5}
    assert rows["identify"]["event"] == "$identify"
    assert orjson.loads(rows["identify"]["properties"]) == {"$traits": {"email": "u1@example.com"}}
    assert (rows["page"]["event"], rows["page"]["title"]) == ("$pageview", "Pricing")
    assert (rows["page"]["host"], rows["page"]["path"]) == ("shop.example", "/pricing")
    assert rows["page"]["referrer_domain"] == "t.co"
    assert (rows["screen"]["event"], rows["screen"]["title"]) == ("$screen", "Home")
    assert orjson.loads(rows["group"]["properties"]) == {
        "$group_id": "acme",
        "$traits": {"plan": "team"},
    }
    assert rows["alias"]["event"] == "$alias"
    assert stored.aliases(project["id"]) == {"a1": "u1", "old-id": "u1"}


def test_batch_with_write_key_in_body_and_merged_context(
    client: TestClient, write_key: str, project: dict[str, Any], stored: Any
) -> None:
    payload = {
        "writeKey": write_key,
        "sentAt": dt.datetime.now(dt.UTC).isoformat(),
        "context": {"locale": "fr-FR", "ip": "81.2.69.160"},
        "batch": [
            {"type": "track", "event": "A", "userId": "u1", "messageId": "m-a"},
            {
                "type": "track",
                "event": "B",
                "userId": "u1",
                "messageId": "m-b",
                "context": {"locale": "de-DE"},
            },
            {"event": "no type", "userId": "u1"},
        ],
    }
    response = client.post("/v1/batch", json=payload)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["accepted"] == 2
    assert body["rejected"] == [{"index": 2, "errors": ["type: required"]}]
    rows = {r["message_id"]: r for r in stored.events(project["id"])}
    assert rows["m-a"]["locale"] == "fr-FR"
    assert rows["m-b"]["locale"] == "de-DE"  # the item's own context wins
    assert rows["m-a"]["country"] == rows["m-b"]["country"] == "GB"


def test_segment_size_limits_answer_400(client: TestClient, write_key: str) -> None:
    big_event = {"userId": "u", "event": "x", "properties": {"blob": "x" * 33_000}}
    response = client.post("/v1/track", json=big_event, headers=basic(write_key))
    assert response.status_code == 400
    assert "32 KB" in response.json()["error"]["message"]
    item = {"type": "track", "userId": "u", "event": "x", "properties": {"blob": "x" * 20_000}}
    big_batch = {"batch": [item] * 26}  # ~520 KB
    response = client.post("/v1/batch", json=big_batch, headers=basic(write_key))
    assert response.status_code == 400
    assert "500 KB" in response.json()["error"]["message"]
    oversized_item = {
        "batch": [
            {"type": "track", "userId": "u", "event": "x", "properties": {"b": "x" * 40_000}},
            {"type": "track", "userId": "u", "event": "ok"},
        ]
    }
    response = client.post("/v1/batch", json=oversized_item, headers=basic(write_key))
    assert response.status_code == 200
    assert response.json()["rejected"][0]["index"] == 0


def test_segment_auth_failures(client: TestClient) -> None:
    response = client.post("/v1/track", json={"userId": "u", "event": "x"})
    assert response.status_code == 401
    response = client.post(
        "/v1/track", json={"userId": "u", "event": "x"}, headers={"Authorization": "Basic !!"}
    )
    assert response.status_code == 401
    response = client.post("/v1/track", json={"userId": "u", "event": "x", "writeKey": "nope"})
    assert response.status_code == 401


def test_single_segment_call_without_ids_is_400(client: TestClient, write_key: str) -> None:
    response = client.post("/v1/track", json={"event": "x"}, headers=basic(write_key))
    assert response.status_code == 400
    assert "anonymous_id" in response.json()["error"]["message"]


def test_segment_batch_errors_in_order(client: TestClient, write_key: str) -> None:
    """A batch's key is checked before its body when it comes in a header; one in the body
    is read from it, and a body that can't hold one says why."""
    cases: list[tuple[bytes, dict[str, str], int, str]] = [
        (b'{"batch": [}', basic("wk_nope"), 401, "invalid_api_key"),
        (b'{"batch": [}', {}, 400, "invalid_json"),
        (b"[1, 2]", {}, 400, "validation_error"),
        (orjson.dumps({"batch": [], "writeKey": 5}), {}, 401, "missing_api_key"),
        (orjson.dumps({"batch": []}), {}, 401, "missing_api_key"),
        (orjson.dumps({"batch": {"a": 1}}), basic(write_key), 400, "validation_error"),
        (orjson.dumps({"batch": {"a": 1}, "writeKey": write_key}), {}, 400, "validation_error"),
        (orjson.dumps({"batch": [], "sentAt": "soon"}), basic(write_key), 400, "validation_error"),
    ]
    for body, headers, status, code in cases:
        response = client.post("/v1/batch", content=body, headers=headers)
        assert response.status_code == status, (body, response.text)
        assert response.json()["error"]["code"] == code, (body, response.text)
    response = client.post("/v1/batch", content=b'{"batch": [}', headers={})
    assert "line 1, column" in response.json()["error"]["message"]
    response = client.post("/v1/batch", content=b'{"writeKey": "x", "batch": {}}', headers={})
    assert response.status_code == 401
    good = {"type": "track", "userId": "u", "event": "ok"}
    response = client.post(
        "/v1/batch", content=orjson.dumps({"batch": [good], "writeKey": write_key})
    )
    assert response.status_code == 200, response.text
    assert response.json()["accepted"] == 1


def _rudder_web_message(i: int, client_now: dt.datetime) -> dict[str, Any]:
    """A track as RudderStack's JavaScript SDK (v3) sends it: the client's time only as
    originalTimestamp, the session in the context, and fields Sextant does not read."""
    return {
        "type": "track",
        "event": "Product Viewed",
        "properties": {"sku": f"S{i}"},
        "anonymousId": f"rudder-anon-{i % 2}",
        "channel": "web",
        "rudderId": "9a7a1b40-0000-4000-8000-00000000000a",
        "messageId": f"rudder-{i}",
        "originalTimestamp": (client_now - dt.timedelta(seconds=30)).isoformat(),
        "integrations": {"All": True},
        "context": {
            "sessionId": 1764849600123,
            "sessionStart": i == 0,
            "library": {"name": "RudderLabs JavaScript SDK", "version": "3.11.1"},
            "page": {
                "url": "https://shop.example/p/1?utm_source=ads",
                "path": "/p/1",
                "referrer": "$direct",
                "referring_domain": "",
                "title": "Product",
                "tab_url": "https://shop.example/p/1?utm_source=ads",
            },
            "screen": {"width": 1440, "height": 900, "density": 2, "innerWidth": 1440},
            "userAgent": "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0",
            "locale": "de-DE",
            "timezone": "GMT+0100",
            "campaign": {},
        },
    }


def test_rudderstack_web_messages_keep_their_client_time_and_session(
    client: TestClient, write_key: str, project: dict[str, Any], stored: Any
) -> None:
    """originalTimestamp is the event's time (corrected for the client's clock with sentAt,
    as a timestamp is) and context.sessionId its session, in a batch of the usual shape (the
    typed path) and in a single call (the dict path)."""
    skew = dt.timedelta(minutes=10)  # the client's clock runs ten minutes fast
    client_now = dt.datetime.now(dt.UTC) + skew
    batch = [_rudder_web_message(i, client_now) for i in range(10)]
    response = client.post(
        "/v1/batch",
        json={"batch": batch, "sentAt": client_now.isoformat()},
        headers=basic(write_key),
    )
    assert response.status_code == 200, response.text
    assert response.json()["accepted"] == 10
    single = _rudder_web_message(10, client_now) | {"sentAt": client_now.isoformat()}
    response = client.post("/v1/track", json=single, headers=basic(write_key))
    assert response.status_code == 200, response.text
    rows = stored.events(project["id"], "startsWith(message_id, 'rudder-')")
    assert len(rows) == 11
    expected = client_now - skew - dt.timedelta(seconds=30)
    for row in rows:
        stamp = row["timestamp"].replace(tzinfo=dt.UTC)
        assert abs(stamp - expected) < dt.timedelta(seconds=5), (row["message_id"], stamp)
        assert row["session_id"] == "1764849600123"
        assert (row["browser"], row["path"], row["utm_source"]) == ("Firefox", "/p/1", "ads")
        assert (row["screen_width"], row["locale"]) == (1440, "de-DE")
        assert row["library"] == "RudderLabs JavaScript SDK"
        assert row["referrer_domain"] == ""  # RudderStack says "$direct"
    # A timestamp beside it wins; a session id of the event's own wins over the context's.
    both = _rudder_web_message(11, client_now) | {
        "timestamp": "2026-11-30T12:00:00Z",
        "session_id": "own",
    }
    response = client.post("/v1/track", json=both, headers=basic(write_key))
    assert response.status_code == 200, response.text
    (row,) = stored.events(project["id"], "message_id = 'rudder-11'")
    assert row["timestamp"].replace(tzinfo=dt.UTC) == dt.datetime(2026, 11, 30, 12, tzinfo=dt.UTC)
    assert row["session_id"] == "own"
    # A client time that is no time is reported like a bad timestamp.
    bad = _rudder_web_message(12, client_now) | {"originalTimestamp": "yesterday-ish"}
    response = client.post("/v1/track", json=bad, headers=basic(write_key))
    assert response.status_code == 400
    assert "timestamp" in response.json()["error"]["message"]


def test_app_messages_take_os_and_device_from_the_context(
    client: TestClient, write_key: str, project: dict[str, Any], stored: Any
) -> None:
    """Mobile SDKs send no user agent: Segment's context.os and context.device give the OS,
    its version and the device type, named as a user agent would name them."""
    apps = [
        # analytics-swift on an iPhone, on an iPad; analytics-kotlin; RudderStack Android
        ({"name": "iOS", "version": "17.1.2"}, {"type": "ios", "model": "iPhone15,2"}),
        ({"name": "iPadOS", "version": "17.1"}, {"type": "ios", "model": "iPad13,4"}),
        ({"name": "android", "version": "14"}, {"type": "android", "model": "Pixel 8"}),
        ({"name": "Android", "version": "13"}, {"type": "Android", "manufacturer": "Samsung"}),
    ]
    expected = [
        ("iOS", "17.1", "mobile"),
        ("iOS", "17.1", "tablet"),
        ("Android", "14", "mobile"),
        ("Android", "13", "mobile"),
    ]
    batch = [
        {
            "type": "screen" if i % 2 else "track",
            "event": "Opened",
            "name": "Home",
            "userId": f"app-user-{i % 4}",
            "messageId": f"app-{i}",
            "context": {"os": apps[i % 4][0], "device": apps[i % 4][1], "locale": "en-US"},
        }
        for i in range(12)  # of the usual batch shape: their os and device still read
    ]
    response = client.post("/v1/batch", json={"batch": batch}, headers=basic(write_key))
    assert response.status_code == 200, response.text
    assert response.json()["accepted"] == 12
    one = {"userId": "app-user-9", "event": "Opened", "messageId": "app-single"}
    one["context"] = {"os": apps[1][0], "device": apps[1][1]}
    assert client.post("/v1/track", json=one, headers=basic(write_key)).status_code == 200
    # A user agent, where there is one, says more than the app's fields: it is used.
    web = {**one, "messageId": "app-with-agent"}
    web["context"] = {
        **one["context"],
        "userAgent": "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0",
    }
    assert client.post("/v1/track", json=web, headers=basic(write_key)).status_code == 200
    rows = {
        r["message_id"]: r for r in stored.events(project["id"], "startsWith(message_id, 'app-')")
    }
    for i in range(12):
        row = rows[f"app-{i}"]
        assert (row["os"], row["os_version"], row["device_type"]) == expected[i % 4], row
        assert row["browser"] == ""
    single = rows["app-single"]
    assert (single["os"], single["os_version"], single["device_type"]) == expected[1]
    agent = rows["app-with-agent"]
    assert (agent["browser"], agent["os"], agent["device_type"]) == ("Firefox", "Linux", "desktop")


def _analytics_next(kind: str, i: int, write_key: str) -> dict[str, Any]:
    """A call as Segment's browser SDK (`@segment/analytics-next`) sends it."""
    now = dt.datetime.now(dt.UTC).isoformat()
    return {
        "type": kind,
        "event": "Signed Up" if kind == "track" else None,
        "name": "Pricing" if kind == "page" else None,
        "properties": {"plan": "pro"} if kind == "track" else {"url": "https://shop.example/"},
        "anonymousId": f"ajs-anon-{i}",
        "messageId": f"ajs-next-{i}",
        "timestamp": now,
        "sentAt": now,
        "integrations": {},
        "writeKey": write_key,
        "_metadata": {"bundled": ["Segment.io"], "unbundled": [], "bundledIds": []},
        "context": {
            "page": {
                "path": "/",
                "referrer": "https://www.bing.com/",
                "search": "?utm_source=bing",
                "title": "Shop",
                "url": "https://shop.example/?utm_source=bing",
            },
            "userAgent": "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 "
            "(KHTML, like Gecko) Version/17.1 Safari/605.1.15",
            "locale": "en-US",
            "library": {"name": "analytics.js", "version": "npm:next-1.70.0"},
        },
    }


def test_browser_sdk_paths(
    client: TestClient, write_key: str, project: dict[str, Any], stored: Any
) -> None:
    """The paths browser SDKs post to: analytics.js 2.0's one-letter calls and batches
    (text/plain, no preflight, the key in the body) and RudderStack's page-unload beacon
    (the key as a query parameter)."""
    plain = {"Content-Type": "text/plain", "Origin": "https://shop.example"}
    for path, kind, i in (("/v1/t", "track", 0), ("/v1/p", "page", 1)):
        response = client.post(
            path, content=orjson.dumps(_analytics_next(kind, i, write_key)), headers=plain
        )
        assert response.status_code == 200, response.text
        assert response.headers["access-control-allow-origin"] == "*"
    identify = {"type": "identify", "userId": "ajs-user", "anonymousId": "ajs-anon-0"}
    response = client.post(
        "/v1/i", content=orjson.dumps(identify | {"writeKey": write_key}), headers=plain
    )
    assert response.status_code == 200, response.text
    batch = [_analytics_next("track", i, write_key) for i in range(2, 12)]
    response = client.post(
        "/v1/b", content=orjson.dumps({"batch": batch, "writeKey": write_key}), headers=plain
    )
    assert response.status_code == 200, response.text
    assert response.json()["accepted"] == 10
    beacon = [
        {"type": "track", "event": "Page Left", "anonymousId": "rs-anon", "messageId": f"rs-{i}"}
        for i in range(3)
    ]
    response = client.post(
        f"/beacon/v1/batch?writeKey={write_key}",
        content=orjson.dumps({"batch": beacon}),
        headers=plain,
    )
    assert response.status_code == 200, response.text
    assert response.json()["accepted"] == 3
    assert (
        client.post("/beacon/v1/batch", content=orjson.dumps({"batch": beacon})).status_code == 401
    )
    preflight = client.options("/beacon/v1/batch", headers={"Origin": "https://shop.example"})
    assert preflight.status_code == 204
    assert preflight.headers["access-control-allow-origin"] == "*"
    rows = {r["message_id"]: r for r in stored.events(project["id"])}
    track, page = rows["ajs-next-0"], rows["ajs-next-1"]
    assert (track["event"], track["browser"], track["utm_source"]) == (
        "Signed Up",
        "Safari",
        "bing",
    )
    assert (track["library"], track["referrer_domain"]) == ("analytics.js", "bing.com")
    assert (page["event"], page["title"], page["path"]) == ("$pageview", "Shop", "/")
    assert all(f"ajs-next-{i}" in rows for i in range(2, 12))
    assert all(f"rs-{i}" in rows for i in range(3))
    assert stored.aliases(project["id"]).get("ajs-anon-0") == "ajs-user"
