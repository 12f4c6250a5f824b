"""Hand-built event sets inserted straight into the session's chDB store, one project each."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from sextant.analytics.service import AnalyticsService
from sextant.core.cache import MemoryCache
from sextant.core.eventstore import EventStore
from sextant.ingest.event import ALIAS_COLUMNS, EVENT_COLUMNS
from sextant.projects.context import ProjectContext

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)

_DEFAULTS: dict[str, Any] = {
    "type": "track",
    "user_id": "",
    "anonymous_id": "",
    "session_id": "",
    "url": "",
    "host": "",
    "path": "",
    "title": "",
    "referrer": "",
    "referrer_domain": "",
    "utm_source": "",
    "utm_medium": "",
    "utm_campaign": "",
    "utm_term": "",
    "utm_content": "",
    "click_id": "",
    "browser": "",
    "browser_version": "",
    "os": "",
    "os_version": "",
    "device_type": "",
    "is_bot": 0,
    "locale": "",
    "screen_width": 0,
    "screen_height": 0,
    "country": "",
    "region": "",
    "city": "",
    "ip_hash": "",
    "ip": "",
    "library": "",
    "library_version": "",
    "http_method": "",
    "http_route": "",
    "http_status": 0,
    "duration_ms": 0.0,
    "request_bytes": 0,
    "response_bytes": 0,
    "chain_id": 0,
    "wallet_address": "",
    "contract_address": "",
    "tx_hash": "",
    "tx_value": 0,
    "token_symbol": "",
    "tx_status": "",
    "properties": "{}",
}


def ts(text: str) -> datetime:
    """`2026-11-20 10:00:00` (UTC unless an offset is given)."""
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class Dataset:
    """One fresh project: add events and aliases, then query it through the service."""

    def __init__(self, store: EventStore, tz: str = "UTC", project_id: str | None = None) -> None:
        self.store = store
        self.project_id = project_id or str(uuid.uuid4())
        self.ctx = ProjectContext(
            project_id=self.project_id,
            org_id=str(uuid.uuid4()),
            name="test",
            timezone=tz,
            retention_days=365,
            store_raw_ip=False,
        )
        self.service = AnalyticsService(
            store=store, cache=MemoryCache(), ttl_seconds=0, clock=lambda: NOW
        )

    def event(
        self, event: str, distinct_id: str, at: str | datetime, **fields: Any
    ) -> dict[str, Any]:
        moment = ts(at) if isinstance(at, str) else at
        message_id = fields.pop("message_id", str(uuid.uuid4()))
        row = {
            **_DEFAULTS,
            "project_id": self.project_id,
            "event_id": fields.pop("event_id", str(uuid.uuid4())),
            "message_id": message_id,
            "event": event,
            "timestamp": moment,
            "received_at": fields.pop("received_at", moment),
            "distinct_id": distinct_id,
            **fields,
        }
        if event == "$pageview":
            row["type"] = fields.get("type", "page")
        return row

    def add(self, *rows: dict[str, Any]) -> None:
        data = [[r[c] for c in EVENT_COLUMNS] for r in rows]
        for row in data:
            row[0] = uuid.UUID(str(row[0]))
            row[1] = uuid.UUID(str(row[1]))
        self.store.insert("events", data, EVENT_COLUMNS)
        self.settle()

    def settle(self) -> None:
        """Flush the views' Buffer tables now. A read that races a background flush can miss
        the rows being moved (README, "Rollups"): the server's answers may lag by those few
        seconds, a test's exact comparisons must not."""
        for table in ("first_seen", "rollup_writes"):
            self.store.command(f"OPTIMIZE TABLE {table}")

    def track(self, event: str, distinct_id: str, at: str, **fields: Any) -> dict[str, Any]:
        row = self.event(event, distinct_id, at, **fields)
        self.add(row)
        return row

    def alias(self, distinct_id: str, person_id: str, at: str = "2026-11-01 00:00:00") -> None:
        self.store.insert(
            "person_aliases",
            [[uuid.UUID(self.project_id), distinct_id, person_id, ts(at)]],
            ALIAS_COLUMNS,
        )

    def query(self, body: dict[str, Any]) -> dict[str, Any]:
        from pydantic import TypeAdapter

        from sextant.analytics.schemas import AnalyticsQuery

        parsed = TypeAdapter(AnalyticsQuery).validate_python(body)
        return self.service.execute(self.ctx, parsed)

    def run(self, model: Any) -> dict[str, Any]:
        return self.service.execute(self.ctx, model)


@pytest.fixture(scope="session")
def store(client: TestClient, app: FastAPI) -> EventStore:
    events: EventStore = app.state.events
    return events


@pytest.fixture
def dataset(store: EventStore) -> Callable[..., Dataset]:
    def factory(tz: str = "UTC", project_id: str | None = None) -> Dataset:
        return Dataset(store, tz, project_id)

    return factory
