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


def _send(client: TestClient, write_key: str, *events: dict[str, Any]) -> None:
    for event in events:  # one request each: links of separate flushes
        response = client.post("/api/v1/events", json=event, headers={"X-API-Key": write_key})
        assert response.status_code == 202, response.text


def _persons(stored: Any, project_id: str, *ids: str) -> set[str]:
    links = stored.aliases(project_id)
    return {links.get(i, i) for i in ids}


def test_links_are_followed_to_the_person(
    client: TestClient, write_key: str, project: dict[str, Any], stored: Any
) -> None:
    """Reports map an id to its person in one step, so links are kept one step long: a
    device identified as user-1 follows user-1 when it is aliased to user-2, whichever
    comes first, in separate requests or in one."""
    pid = project["id"]
    # identify, then alias the user: the device follows
    _send(
        client,
        write_key,
        {"type": "identify", "anonymous_id": "dev-a", "user_id": "chain-u1"},
        {"type": "alias", "previous_id": "chain-u1", "user_id": "chain-u2"},
    )
    # alias first, then identify with the old id: linked to where it leads
    _send(
        client,
        write_key,
        {"type": "alias", "previous_id": "chain-u3", "user_id": "chain-u4"},
        {"type": "identify", "anonymous_id": "dev-b", "user_id": "chain-u3"},
    )
    # both in one batch
    batch = [
        {"type": "identify", "anonymous_id": "dev-c", "user_id": "chain-u5"},
        {"type": "alias", "previous_id": "chain-u5", "user_id": "chain-u6"},
    ]
    _send(client, write_key, {"batch": batch})
    links = stored.aliases(pid)
    assert (links["dev-a"], links["chain-u1"]) == ("chain-u2", "chain-u2")
    assert (links["dev-b"], links["chain-u3"]) == ("chain-u4", "chain-u4")
    assert (links["dev-c"], links["chain-u5"]) == ("chain-u6", "chain-u6")
    for person in ("chain-u2", "chain-u4", "chain-u6"):
        assert person not in links  # every link is one step long


def test_a_link_back_is_one_person_not_two(
    client: TestClient, write_key: str, read_key: str, project: dict[str, Any], stored: Any
) -> None:
    """alias u2 -> u3, then u3 -> u2: they are one person already; before, each id pointed
    at the other and reports counted two people (found by fuzzing)."""
    pid = project["id"]
    _send(
        client,
        write_key,
        {"type": "alias", "previous_id": "loop-u2", "user_id": "loop-u3"},
        {"type": "alias", "previous_id": "loop-u3", "user_id": "loop-u2"},
    )
    assert _persons(stored, pid, "loop-u2", "loop-u3") == {"loop-u3"}
    for distinct_id in ("loop-u2", "loop-u3"):
        read = client.get(
            f"/api/v1/projects/{pid}/persons/{distinct_id}",
            params={"fresh": "true"},
            headers={"X-API-Key": read_key},
        )
        assert read.status_code == 200, read.text
        assert read.json()["person_id"] == "loop-u3", read.json()
