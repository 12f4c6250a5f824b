"""A retried delivery counts once; identify/alias/track link ids to one person."""

from __future__ import annotations

import base64
import datetime as dt
from typing import Any

from fastapi.testclient import TestClient


def basic(key: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{key}:".encode()).decode()}


def segment_batch(sent_at: dt.datetime, timestamp: dt.datetime) -> dict[str, Any]:
    return {
        "sentAt": sent_at.isoformat(),
        "batch": [
            {
                "type": "track",
                "event": "Paid",
                "userId": "u1",
                "messageId": f"msg-{i}",
                "timestamp": timestamp.isoformat(),
            }
            for i in range(3)
        ],
    }


def test_retried_batch_with_new_sent_at_counts_once(
    client: TestClient, write_key: str, project: dict[str, Any], stored: Any
) -> None:
    now = dt.datetime.now(dt.UTC)
    first = client.post("/v1/batch", json=segment_batch(now, now), headers=basic(write_key))
    assert first.status_code == 200
    retry = segment_batch(now + dt.timedelta(seconds=30), now)  # the library re-stamps sentAt
    second = client.post("/v1/batch", json=retry, headers=basic(write_key))
    assert second.status_code == 200
    assert second.json()["accepted"] == 3
    assert stored.count(project["id"]) == 3
    assert stored.count(project["id"], final=False) == 3  # skipped at write time


def test_retry_after_restart_collapses_with_final(
    client: TestClient,
    make_client: Any,
    settings: Any,
    write_key: str,
    project: dict[str, Any],
    stored: Any,
) -> None:
    """A second app (empty write-time cache, e.g. after a restart) stores the copy again;
    the sort key is identical, so FINAL (what every report reads) still counts it once."""
    wrong_clock = dt.datetime.now(dt.UTC) - dt.timedelta(hours=3)  # client clock 3 h behind
    event_time = wrong_clock - dt.timedelta(minutes=5)
    first = client.post(
        "/v1/batch", json=segment_batch(wrong_clock, event_time), headers=basic(write_key)
    )
    assert first.status_code == 200
    restarted = make_client(database_url=settings.database_url)  # same stores, fresh state
    retry = segment_batch(wrong_clock + dt.timedelta(seconds=40, milliseconds=3), event_time)
    response = restarted.post("/v1/batch", json=retry, headers=basic(write_key))
    assert response.status_code == 200, response.text
    assert stored.count(project["id"], final=False) == 6
    assert stored.count(project["id"]) == 3
    # Skew corrected: the event happened ~5 minutes before the server received it.
    [row] = stored.events(project["id"], "message_id = 'msg-0'")
    age = dt.datetime.now(dt.UTC).replace(tzinfo=None) - row["timestamp"]
    assert dt.timedelta(minutes=4) < age < dt.timedelta(minutes=7)


def test_same_message_twice_in_one_batch_is_stored_once(
    client: TestClient, write_key: str, project: dict[str, Any], stored: Any
) -> None:
    event = {"event": "x", "user_id": "u", "message_id": "dup"}
    response = client.post(
        "/api/v1/events", json={"batch": [event, event]}, headers={"X-API-Key": write_key}
    )
    assert response.status_code == 202
    assert stored.count(project["id"], final=False) == 1


def test_identify_alias_and_track_link_ids_to_one_person(
    client: TestClient, write_key: str, project: dict[str, Any], stored: Any
) -> None:
    headers = {"X-API-Key": write_key}
    batch = [
        {"event": "visit", "anonymous_id": "anon-1"},
        {"type": "identify", "user_id": "user-1", "anonymous_id": "anon-1"},
        {"type": "alias", "previous_id": "legacy-7", "user_id": "user-1"},
        {"event": "login", "user_id": "user-1", "anonymous_id": "anon-2"},
        {"type": "alias", "user_id": "user-1"},
    ]
    response = client.post("/api/v1/events", json={"batch": batch}, headers=headers)
    assert response.status_code == 202
    assert response.json()["rejected"] == [
        {"index": 4, "errors": ["previous_id: required for alias events"]}
    ]
    assert stored.aliases(project["id"]) == {
        "anon-1": "user-1",
        "legacy-7": "user-1",
        "anon-2": "user-1",
    }
    persons = stored.store.query(
        "SELECT uniqExact(if(a.person_id != '', a.person_id, e.distinct_id)) "
        "FROM events AS e FINAL LEFT JOIN (SELECT distinct_id, person_id FROM person_aliases "
        "FINAL WHERE project_id = {p:UUID}) AS a ON a.distinct_id = e.distinct_id "
        "WHERE e.project_id = {p:UUID}",
        {"p": project["id"]},
    ).scalar()
    assert persons == 1


def test_relinking_an_anonymous_id_keeps_the_latest_person(
    client: TestClient, write_key: str, project: dict[str, Any], stored: Any
) -> None:
    headers = {"X-API-Key": write_key}
    first = {"type": "identify", "user_id": "alice", "anonymous_id": "shared-device"}
    second = {"type": "identify", "user_id": "bob", "anonymous_id": "shared-device"}
    assert client.post("/api/v1/events", json=first, headers=headers).status_code == 202
    assert client.post("/api/v1/events", json=second, headers=headers).status_code == 202
    assert stored.aliases(project["id"]) == {"shared-device": "bob"}
