"""Input found by fuzzing the running server (schemathesis and by hand) that answered 500,
or was accepted and then failed the whole group commit (503 to every request of the flush,
and again on every retry), or was stored corrupted. Each is now a clear error for that
event only, and the rest of its batch is stored."""

from __future__ import annotations

import base64
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient

GOOD = {"event": "good", "user_id": "fuzz-good"}
WALLET = "0x52908400098527886e0f7030069857d2e4169ee7"
TX = "0x5c504ed432cb51138bcf09aa5e8a410dd4a1e204ef84bfed1be16dfba1b22060"

# (the event, the field its error names)
HOSTILE: list[tuple[dict[str, Any], str]] = [
    ({"type": {}, "user_id": "u1"}, "type"),
    ({"type": [], "user_id": "u1"}, "type"),
    ({"event": "p", "user_id": "u1", "web3": {"chain_id": "²"}}, "web3.chain_id"),
    (
        {
            "type": "api",
            "user_id": "u1",
            "api": {
                "method": "GET",
                "route": "/x",
                "status": 200,
                "duration_ms": 1,
                "request_bytes": "³",
            },
        },
        "api.request_bytes",
    ),
    ({"event": "p", "user_id": "u1", "web3": {"value": "5\n"}}, "web3.value"),
    ({"event": "p", "user_id": "u1", "web3": {"wallet": WALLET + "\n"}}, "web3.wallet"),
    ({"event": "p", "user_id": "u1", "web3": {"tx_hash": TX + "\n"}}, "web3.tx_hash"),
]


@pytest.mark.parametrize("size", [2, 12])  # the row path and the fast path's batches
def test_a_hostile_event_is_rejected_alone(
    client: TestClient, write_key: str, project: dict[str, Any], stored: Any, size: int
) -> None:
    for n, (event, field) in enumerate(HOSTILE):
        tag = f"h{size}-{n}"
        batch = [{**GOOD, "message_id": f"{tag}-{i}"} for i in range(size - 1)] + [event]
        response = client.post(
            "/api/v1/events",
            content=orjson.dumps({"batch": batch}),
            headers={"X-API-Key": write_key},
        )
        assert response.status_code == 202, (event, response.text)
        body = response.json()
        assert body["accepted"] == size - 1, event
        (rejected,) = body["rejected"]
        assert rejected["index"] == size - 1
        assert rejected["errors"][0].startswith(f"{field}:"), rejected
        # ... and the rest of the batch is stored (the flush did not fail).
        assert stored.count(project["id"], f"startsWith(message_id, '{tag}-')") == size - 1
        single = client.post("/api/v1/events", json=event, headers={"X-API-Key": write_key})
        assert single.status_code == 400, single.text


def test_hostile_segment_messages(client: TestClient, write_key: str, stored: Any) -> None:
    basic = {"Authorization": "Basic " + base64.b64encode(f"{write_key}:".encode()).decode()}
    batch = {
        "batch": [
            {"type": [], "userId": "s1", "event": "x"},
            {"type": "track", "userId": "s1", "event": "ok"},
        ]
    }
    for path in ("/v1/batch", "/v1/b"):
        response = client.post(path, json=batch, headers=basic)
        assert response.status_code == 200, response.text
        assert response.json()["accepted"] == 1
        assert response.json()["rejected"][0]["index"] == 0
    response = client.post(
        "/api/v1/collect",
        content=orjson.dumps({"write_key": write_key, "type": {}, "anonymous_id": "c1"}),
        headers={"Content-Type": "text/plain"},
    )
    assert response.status_code == 400
    assert "type:" in response.json()["error"]["message"]


def test_non_ascii_basic_credentials_are_a_401(client: TestClient) -> None:
    response = client.post(
        "/v1/track",
        content=b'{"userId": "a", "event": "b"}',
        headers={"Authorization": "Basic é".encode()},  # as bytes: httpx sends them as they are
    )
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_api_key"


def test_a_message_id_like_a_uuid_with_a_newline_is_stored(
    client: TestClient, write_key: str, project: dict[str, Any], stored: Any
) -> None:
    """It is no UUID (the event id is derived from it), so it can't fail the flush."""
    message_id = "0123456789abcdef0123456789abcdef\n"
    batch = [{**GOOD, "message_id": message_id}, {**GOOD, "message_id": "uuid-nl-neighbour"}]
    response = client.post(
        "/api/v1/events", json={"batch": batch}, headers={"X-API-Key": write_key}
    )
    assert response.status_code == 202, response.text
    assert response.json()["accepted"] == 2
    (row,) = stored.events(project["id"], "message_id = '0123456789abcdef0123456789abcdef\\n'")
    assert str(row["event_id"]).replace("-", "") != "0123456789abcdef0123456789abcdef"


def test_integers_beyond_64_bits_keep_every_digit(
    client: TestClient, write_key: str, project: dict[str, Any], stored: Any
) -> None:
    """They were read as floats (1.2345678901234568e+29): now stored as sent, on every
    path (a single event, a batch of the fast path's shape, Segment calls)."""
    big = 123456789012345678901234567890
    basic = {"Authorization": "Basic " + base64.b64encode(f"{write_key}:".encode()).decode()}
    native = {"X-API-Key": write_key}
    sends = [
        (
            "/api/v1/events",
            {"event": "big", "user_id": "b", "message_id": "big-1", "properties": {"n": big}},
            native,
        ),
        (
            "/api/v1/events",
            {
                "batch": [
                    {
                        "event": "big",
                        "user_id": "b",
                        "message_id": f"big-b{i}",
                        "properties": {"n": big},
                    }
                    for i in range(10)
                ]
            },
            native,
        ),
        (
            "/v1/track",
            {"event": "big", "userId": "b", "messageId": "big-s", "properties": {"n": -big}},
            basic,
        ),
        (
            "/v1/batch",
            {
                "batch": [
                    {
                        "type": "track",
                        "event": "big",
                        "userId": "b",
                        "messageId": "big-sb",
                        "properties": {"n": big},
                    }
                ],
                "context": {"locale": "de"},
            },
            basic,
        ),
        ("/v1/identify", {"userId": "b", "messageId": "big-i", "traits": {"n": big}}, basic),
    ]
    for path, body, headers in sends:
        response = client.post(path, content=json_bytes(body), headers=headers)
        assert response.status_code in (200, 202), (path, response.text)
        assert not response.json().get("rejected"), response.text
    rows = {
        r["message_id"]: r for r in stored.events(project["id"], "startsWith(message_id, 'big-')")
    }
    assert len(rows) == 14
    for row in rows.values():
        assert str(big) in row["properties"], row["properties"]
        assert "e+29" not in row["properties"]
    # ... and malformed bodies with such a number still say where they break.
    response = client.post(
        "/api/v1/events", content=b'{"event": "x", "n": 123456789012345678901,}', headers=native
    )
    assert response.status_code == 400
    assert "line 1, column" in response.json()["error"]["message"]
    response = client.post(
        "/api/v1/events",
        content=b'{"event": "x", "n": 123456789012345678901, "f": NaN}',
        headers=native,
    )
    assert response.status_code == 400


def json_bytes(body: Any) -> bytes:
    import json

    return json.dumps(body).encode()  # (orjson can't write integers beyond 64 bits)


def _nested(depth: int) -> str:
    """JSON text of an object nested `depth` levels deep."""
    return '{"a":' * (depth - 1) + '{"leaf":1}' + "}" * (depth - 1)


def _good_json(tag: str, n: int, segment: bool = False) -> list[str]:
    user = "userId" if segment else "user_id"
    extra = '"type":"track",' if segment else ""
    return [
        f'{{{extra}"event":"good","{user}":"deep-good","message_id":"{tag}-{i}",'
        f'"messageId":"{tag}-{i}"}}'
        for i in range(n)
    ]


@pytest.mark.parametrize("depth", [40, 300, 1000, 1100, 5000])
@pytest.mark.parametrize("size", [3, 12])  # the row path and the fast paths' batches
def test_an_event_nested_too_deeply_is_rejected_alone_on_every_path(
    client: TestClient, write_key: str, project: dict[str, Any], stored: Any, depth: int, size: int
) -> None:
    deep = _nested(depth)
    auth = {"Authorization": "Basic " + base64.b64encode(f"{write_key}:".encode()).decode()}
    paths: list[tuple[str, dict[str, str], bool, str]] = [
        ("/api/v1/events", {"X-API-Key": write_key}, False, "n"),
        ("/v1/batch", auth, True, "s"),
        ("/api/v1/collect", {"Content-Type": "text/plain"}, False, "c"),
    ]
    for path, headers, segment, letter in paths:
        tag = f"deep-{letter}{depth}-{size}"
        user = "userId" if segment else "user_id"
        extra = '"type":"track",' if segment else ""
        bad = f'{{{extra}"event":"deep","{user}":"deep-bad","properties":{deep}}}'
        events = _good_json(tag, size - 1, segment)
        events.insert(1, bad)
        key = f'"write_key":"{write_key}",' if path.endswith("collect") else ""
        body = "{" + key + '"batch":[' + ",".join(events) + "]}"
        response = client.post(path, content=body, headers=headers)
        assert response.status_code in (200, 202), (path, response.text)
        answer = response.json()
        assert answer["accepted"] == size - 1, (path, answer)
        (rejected,) = answer["rejected"]
        assert rejected["index"] == 1
        assert "nested" in rejected["errors"][0], rejected
        assert stored.count(project["id"], "message_id LIKE {t:String}", t=f"{tag}-%") == size - 1


@pytest.mark.parametrize("depth", [40, 1000, 5000])
def test_a_single_event_nested_too_deeply_is_a_clear_400(
    client: TestClient, write_key: str, depth: int
) -> None:
    auth = {"Authorization": "Basic " + base64.b64encode(f"{write_key}:".encode()).decode()}
    for path, headers, user in (
        ("/api/v1/events", {"X-API-Key": write_key}, "user_id"),
        ("/v1/track", auth, "userId"),
    ):
        body = f'{{"event":"deep","{user}":"u","properties":{_nested(depth)}}}'
        response = client.post(path, content=body, headers=headers)
        assert response.status_code == 400, (path, response.text)
        assert "nested" in response.json()["error"]["message"]


def test_properties_nested_as_deep_as_the_limit_are_stored(
    client: TestClient, write_key: str, project: dict[str, Any], stored: Any
) -> None:
    from sextant.ingest.normalize import MAX_DEPTH

    body = (
        '{"event":"deep-ok","user_id":"u","message_id":"deep-ok-1","properties":'
        + _nested(MAX_DEPTH)
        + "}"
    )
    response = client.post("/api/v1/events", content=body, headers={"X-API-Key": write_key})
    assert response.status_code == 202, response.text
    (row,) = stored.events(project["id"], "message_id = 'deep-ok-1'")
    assert row["properties"] == _nested(MAX_DEPTH)


@pytest.mark.parametrize(
    "content_type",
    ["application/x-www-form-urlencoded", "application/xml", "multipart/form-data; boundary=x"],
)
def test_ingestion_refuses_bodies_that_are_not_declared_as_json(
    client: TestClient, write_key: str, content_type: str
) -> None:
    auth = {"Authorization": "Basic " + base64.b64encode(f"{write_key}:".encode()).decode()}
    body = orjson.dumps({"event": "ct", "user_id": "u", "userId": "u", "write_key": write_key})
    for path, headers in (
        ("/api/v1/events", {"X-API-Key": write_key}),
        ("/api/v1/collect", {}),
        ("/v1/track", auth),
        ("/v1/batch", auth),
    ):
        response = client.post(
            path, content=body, headers={**headers, "Content-Type": content_type}
        )
        assert response.status_code == 415, (path, response.text)
        error = response.json()["error"]
        assert error["code"] == "unsupported_media_type"
        assert "application/json" in error["message"]
        assert response.headers["access-control-allow-origin"] == "*"


@pytest.mark.parametrize(
    "content_type",
    [
        None,
        "application/json",
        "application/json; charset=utf-8",
        "text/plain;charset=UTF-8",
        "application/vnd.sextant+json",
    ],
)
def test_ingestion_accepts_json_and_beacon_text(
    client: TestClient, write_key: str, content_type: str | None
) -> None:
    headers = {"X-API-Key": write_key}
    if content_type:
        headers["Content-Type"] = content_type
    response = client.post(
        "/api/v1/events", content=orjson.dumps({"event": "ct", "user_id": "u"}), headers=headers
    )
    assert response.status_code == 202, response.text
