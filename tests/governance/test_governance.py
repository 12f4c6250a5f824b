"""Governance: deleting and exporting one person's data, bulk export, retention."""

from __future__ import annotations

import csv
import io
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import httpx
import orjson
from fastapi.testclient import TestClient

from sextant.analytics.rollups import RollupBuilder
from sextant.governance import queries
from sextant.governance.service import apply_retention
from sextant.ingest.event import ALIAS_COLUMNS
from sextant.sdk.testing import SextantServer


def send(client: TestClient, write_key: str, events: list[dict[str, Any]]) -> None:
    response = client.post(
        "/api/v1/events", json={"batch": events}, headers={"X-API-Key": write_key}
    )
    assert response.status_code == 202, response.text
    assert response.json()["accepted"] == len(events), response.text


def stored(client: TestClient, project_id: str, distinct_ids: list[str]) -> int:
    store = client.app.state.events  # type: ignore[attr-defined]
    return int(
        store.query(
            "SELECT count() FROM events FINAL WHERE project_id = {p:UUID} "
            "AND distinct_id IN {ids:Array(String)}",
            {"p": project_id, "ids": distinct_ids},
        ).scalar()
    )


def test_delete_person_removes_all_linked_ids_and_nobody_else(
    client: TestClient, auth: dict[str, Any], project: dict[str, Any], write_key: str
) -> None:
    send(
        client,
        write_key,
        [
            {
                "type": "page",
                "anonymous_id": "anon-1",
                "context": {"page": {"url": "https://a.example/"}},
            },
            {"event": "signup", "anonymous_id": "anon-1"},
            {
                "type": "identify",
                "user_id": "alice",
                "anonymous_id": "anon-1",
                "traits": {"email": "a@x.io"},
            },
            {"event": "purchase", "user_id": "alice", "properties": {"amount": 30}},
            {"event": "signup", "user_id": "bob"},
        ],
    )
    assert stored(client, project["id"], ["anon-1", "alice"]) == 4

    response = client.delete(
        f"/api/v1/projects/{project['id']}/persons/anon-1", headers=auth["headers"]
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body["distinct_ids"]) == {"anon-1", "alice"}
    assert body["events_deleted"] == 4
    assert stored(client, project["id"], ["anon-1", "alice"]) == 0
    assert stored(client, project["id"], ["bob"]) == 1  # another person is untouched

    again = client.delete(
        f"/api/v1/projects/{project['id']}/persons/alice", headers=auth["headers"]
    )
    assert again.status_code == 404
    assert again.json()["error"]["code"] == "not_found"


def test_person_export_is_complete_ndjson_with_exact_big_integers(
    client: TestClient, auth: dict[str, Any], project: dict[str, Any], write_key: str
) -> None:
    wei = "123456789012345678901234567890"
    send(
        client,
        write_key,
        [
            {"event": "signup", "anonymous_id": "anon-x", "timestamp": "2026-11-01T10:00:00Z"},
            {
                "type": "identify",
                "user_id": "carol",
                "anonymous_id": "anon-x",
                "timestamp": "2026-11-01T10:01:00Z",
            },
            {
                "type": "web3",
                "event": "tx_confirmed",
                "user_id": "carol",
                "timestamp": "2026-11-01T10:02:00Z",
                "web3": {"chain_id": 1, "wallet": "0x" + "ab" * 20, "value": wei, "token": "ETH"},
            },
        ],
    )
    response = client.get(
        f"/api/v1/projects/{project['id']}/persons/carol/export", headers=auth["headers"]
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/x-ndjson")
    assert "attachment" in response.headers["content-disposition"]
    rows = [orjson.loads(line) for line in response.content.splitlines()]
    assert [r["event"] for r in rows] == ["signup", "$identify", "tx_confirmed"]
    assert rows[2]["tx_value"] == wei
    assert rows[2]["wallet_address"].lower() == "0x" + "ab" * 20
    assert isinstance(rows[0]["properties"], dict)


def test_personal_data_needs_an_admin_not_a_read_key_or_viewer(
    client: TestClient,
    auth: dict[str, Any],
    org: dict[str, Any],
    project: dict[str, Any],
    write_key: str,
    read_key: str,
    make_user: Any,
) -> None:
    send(client, write_key, [{"event": "signup", "user_id": "dave"}])
    url = f"/api/v1/projects/{project['id']}/persons/dave"
    by_key = client.delete(url, headers={"X-API-Key": read_key})
    assert by_key.status_code == 403
    assert "API key" in by_key.json()["error"]["message"]

    viewer = make_user()
    added = client.post(
        f"/api/v1/orgs/{org['id']}/members",
        json={"email": viewer["email"], "role": "viewer"},
        headers=auth["headers"],
    )
    assert added.status_code == 201, added.text
    assert client.delete(url, headers=viewer["headers"]).status_code == 403
    assert client.get(url + "/export", headers=viewer["headers"]).status_code == 403

    stranger = make_user()
    assert client.delete(url, headers=stranger["headers"]).status_code == 404
    assert stored(client, project["id"], ["dave"]) == 1


def test_bulk_export_csv_and_date_range(
    client: TestClient, project: dict[str, Any], write_key: str, read_key: str
) -> None:
    send(
        client,
        write_key,
        [
            {"event": "old", "user_id": "u1", "timestamp": "2026-01-05T12:00:00Z"},
            {"event": "mid", "user_id": "u2", "timestamp": "2026-03-05T12:00:00Z"},
            {"event": "new", "user_id": "u3", "timestamp": "2026-06-05T12:00:00Z"},
        ],
    )
    headers = {"X-API-Key": read_key}
    everything = client.get(f"/api/v1/projects/{project['id']}/export?format=csv", headers=headers)
    assert everything.status_code == 200, everything.text
    rows = list(csv.DictReader(io.StringIO(everything.text)))
    assert [r["event"] for r in rows] == ["old", "mid", "new"]

    window = client.get(
        f"/api/v1/projects/{project['id']}/export",
        params={"date_from": "2026-02-01", "date_to": "2026-04-01"},
        headers=headers,
    )
    assert [orjson.loads(x)["event"] for x in window.content.splitlines()] == ["mid"]

    bad = client.get(
        f"/api/v1/projects/{project['id']}/export", params={"format": "xml"}, headers=headers
    )
    assert bad.status_code == 422
    assert bad.json()["error"]["details"][0]["field"].endswith("format")


def test_export_pages_through_more_than_one_page(
    client: TestClient, project: dict[str, Any], write_key: str, read_key: str, monkeypatch: Any
) -> None:
    from sextant.governance import queries

    monkeypatch.setattr(queries, "PAGE_ROWS", 7)
    base = datetime(2026, 5, 1, tzinfo=UTC)
    events = [
        {
            "event": "tick",
            "user_id": f"p{i % 4}",
            "timestamp": (base + timedelta(seconds=i // 3)).isoformat(),
        }
        for i in range(40)
    ]
    send(client, write_key, events)
    response = client.get(
        f"/api/v1/projects/{project['id']}/export", headers={"X-API-Key": read_key}
    )
    lines = response.content.splitlines()
    assert len(lines) == 40
    assert len({orjson.loads(x)["event_id"] for x in lines}) == 40


def test_retention_deletes_only_expired_events_of_that_project(
    client: TestClient, auth: dict[str, Any], project: dict[str, Any], write_key: str
) -> None:
    now = datetime.now(UTC)
    send(
        client,
        write_key,
        [
            {
                "event": "ancient",
                "user_id": "r1",
                "timestamp": (now - timedelta(days=40)).isoformat(),
            },
            {
                "event": "recent",
                "user_id": "r1",
                "timestamp": (now - timedelta(days=5)).isoformat(),
            },
        ],
    )
    changed = client.patch(
        f"/api/v1/projects/{project['id']}", json={"retention_days": 30}, headers=auth["headers"]
    )
    assert changed.status_code == 200, changed.text
    app = client.app
    deleted = apply_retention(app.state.events, app.state.db, now=now)  # type: ignore[attr-defined]
    assert deleted.get(project["id"]) == 1
    store = app.state.events  # type: ignore[attr-defined]
    names = store.query(
        "SELECT event FROM events FINAL WHERE project_id = {p:UUID}", {"p": project["id"]}
    ).rows
    assert names == (("recent",),)


def project_rows(client: TestClient, project_id: str) -> int:
    store = client.app.state.events  # type: ignore[attr-defined]
    return int(
        store.query(
            "SELECT count() FROM events WHERE project_id = {p:UUID}", {"p": project_id}
        ).scalar()
    )


def rows_per_table(client: TestClient, project_id: str) -> dict[str, int]:
    """{table: rows of this project} for every table of the event store that holds
    projects' rows (Buffer tables flushed first)."""
    store = client.app.state.events  # type: ignore[attr-defined]
    store.flush_buffers()
    return {
        table: int(
            store.query(
                f"SELECT count() FROM {table} WHERE project_id = {{p:UUID}}", {"p": project_id}
            ).scalar()
        )
        for table in queries.project_tables(store)
    }


def test_deleting_a_project_deletes_its_events_and_keys(
    client: TestClient,
    auth: dict[str, Any],
    org: dict[str, Any],
    project: dict[str, Any],
    write_key: str,
) -> None:
    other = client.post(
        "/api/v1/projects", json={"org_id": org["id"], "name": "Other"}, headers=auth["headers"]
    ).json()
    other_key = client.post(
        f"/api/v1/projects/{other['id']}/keys",
        json={"name": "w", "kind": "write"},
        headers=auth["headers"],
    ).json()["secret"]
    yesterday = (datetime.now(UTC) - timedelta(days=1)).isoformat()
    send(
        client,
        write_key,
        [
            {"event": "a", "user_id": "x", "timestamp": yesterday},
            {"event": "b", "user_id": "y", "timestamp": yesterday},
        ],
    )
    send(client, other_key, [{"event": "c", "user_id": "z"}])
    # Yesterday built: the project's rows are in the rollup tables too.
    store = client.app.state.events  # type: ignore[attr-defined]
    built = RollupBuilder(store, quiet_seconds=0).build(project["id"], project["timezone"])
    assert built.days >= 1
    before = rows_per_table(client, project["id"])
    assert {"events", "rollup_daily", "rollup_person_days", "rollup_person_events"} <= {
        table for table, n in before.items() if n
    }

    assert (
        client.delete(f"/api/v1/projects/{project['id']}", headers=auth["headers"]).status_code
        == 204
    )
    assert rows_per_table(client, project["id"]) == dict.fromkeys(before, 0)
    assert project_rows(client, other["id"]) == 1
    gone = client.post(
        "/api/v1/events", json={"event": "late", "user_id": "x"}, headers={"X-API-Key": write_key}
    )
    assert gone.status_code == 401


def test_deleting_an_org_deletes_the_events_of_all_its_projects(
    client: TestClient,
    auth: dict[str, Any],
    org: dict[str, Any],
    project: dict[str, Any],
    write_key: str,
) -> None:
    send(client, write_key, [{"event": "a", "user_id": "x"}])
    assert client.delete(f"/api/v1/orgs/{org['id']}", headers=auth["headers"]).status_code == 204
    assert project_rows(client, project["id"]) == 0


def test_retention_pass_purges_events_of_projects_that_no_longer_exist(
    client: TestClient, project: dict[str, Any], write_key: str
) -> None:
    """Every orphan goes in the same pass (one delete per table for all of them); a project
    that exists keeps its rows."""
    import uuid

    app = client.app
    store = app.state.events  # type: ignore[attr-defined]
    send(client, write_key, [{"event": "kept", "user_id": "k1"}])
    orphans = [str(uuid.uuid4()) for _ in range(3)]
    for orphan in orphans:
        store.insert(
            "events",
            [
                [
                    orphan,
                    str(uuid.uuid4()),
                    "m-orphan",
                    "track",
                    "ghost",
                    datetime.now(UTC),
                    datetime.now(UTC),
                ]
            ],
            ["project_id", "event_id", "message_id", "type", "event", "timestamp", "received_at"],
        )
        store.insert(
            "person_aliases",
            [[orphan, "anon", "user", datetime.now(UTC)]],
            ALIAS_COLUMNS,
        )
    assert [project_rows(client, orphan) for orphan in orphans] == [1, 1, 1]
    apply_retention(store, app.state.db)  # type: ignore[attr-defined]
    assert [project_rows(client, orphan) for orphan in orphans] == [0, 0, 0]
    links = store.query(
        "SELECT count() FROM person_aliases WHERE project_id IN {ids:Array(UUID)}",
        {"ids": orphans},
    ).scalar()
    assert links == 0
    assert project_rows(client, project["id"]) == 1


def test_exported_timestamps_are_explicit_utc(
    client: TestClient, project: dict[str, Any], write_key: str, read_key: str
) -> None:
    send(
        client,
        write_key,
        [{"event": "e", "user_id": "t", "timestamp": "2026-07-01T12:30:00.250+02:00"}],
    )
    headers = {"X-API-Key": read_key}
    line = client.get(f"/api/v1/projects/{project['id']}/export", headers=headers).content
    row = orjson.loads(line.splitlines()[0])
    assert row["timestamp"] == "2026-07-01T10:30:00.250Z"
    text = client.get(f"/api/v1/projects/{project['id']}/export?format=csv", headers=headers).text
    assert next(csv.DictReader(io.StringIO(text)))["timestamp"] == "2026-07-01T10:30:00.250Z"


# Ids ingestion accepts that a header or a path cannot hold as they are.
AWKWARD_IDS = [
    "zoë-ü-数字",
    'quo"te',
    "line\r\nbreak",
    "nul\x00byte",
    "slash/and\\back",
    "semi;colon%20pct",
    "ends/export",
]


def test_every_id_ingestion_accepts_can_be_exported_and_erased(tmp_path: Path) -> None:
    """Against a real server (the test client decodes a path twice): a header with a line
    break in it made the server drop the connection."""
    with SextantServer(tmp_path / "server") as server:
        account = server.bootstrap()
        with httpx.Client(base_url=server.url, timeout=30.0) as http:
            sent = http.post(
                "/api/v1/events",
                headers={"X-API-Key": account.write_key},
                json={"batch": [{"event": "signup", "user_id": i} for i in AWKWARD_IDS]},
            )
            assert sent.status_code == 202, sent.text
            assert sent.json()["rejected"] == []
            base = f"/api/v1/projects/{account.project_id}/persons/"
            for distinct_id in AWKWARD_IDS:
                path = base + quote(distinct_id, safe="")
                exported = http.get(
                    path + "/export", params={"format": "csv"}, headers=account.headers
                )
                assert exported.status_code == 200, (distinct_id, exported.text)
                rows = list(csv.DictReader(io.StringIO(exported.text)))
                assert [row["distinct_id"] for row in rows] == [distinct_id]
                header = exported.headers["content-disposition"]
                match = re.fullmatch(r'attachment; filename="([ -~]*)"; filename\*=(.*)', header)
                assert match is not None, header
                assert '"' not in match.group(1)
                charset, _, encoded = match.group(2).partition("''")
                assert charset == "UTF-8"
                expected = re.sub(r"[\x00-\x1f/\\]", "_", distinct_id)
                assert unquote(encoded) == f"person-{expected}.csv"

                erased = http.delete(path, headers=account.headers)
                assert erased.status_code == 200, (distinct_id, erased.text)
                assert erased.json()["distinct_ids"] == [distinct_id]
                gone = http.get(path + "/export", headers=account.headers)
                assert gone.status_code == 404, (distinct_id, gone.text)
