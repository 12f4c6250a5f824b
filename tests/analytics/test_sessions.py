"""Visits: bounce rate, visit length and views per visit, with the previous period."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from sextant.analytics.schemas import SessionsQuery

Factory = Callable[..., Any]


def test_visits_bounces_and_duration_by_hand(dataset: Factory) -> None:
    d = dataset()
    # Visit s1: three page views over 10 minutes (not a bounce).
    d.track("$pageview", "u1", "2026-11-10 10:00:00", session_id="s1")
    d.track("$pageview", "u1", "2026-11-10 10:04:00", session_id="s1")
    d.track("$pageview", "u1", "2026-11-10 10:10:00", session_id="s1")
    # Visit s2: one page view and a click 30 s later: a bounce lasting 30 s.
    d.track("$pageview", "u2", "2026-11-11 09:00:00", session_id="s2")
    d.track("$outbound_click", "u2", "2026-11-11 09:00:30", session_id="s2")
    # Visit s3: one page view only: a bounce of 0 s.
    d.track("$pageview", "u3", "2026-11-12 09:00:00", session_id="s3")
    # Not visits: a session without page views, and an event without a session.
    d.track("signup", "u4", "2026-11-12 10:00:00", session_id="s4")
    d.track("$pageview", "u5", "2026-11-12 11:00:00")
    # The previous period (Nov 1-7): one visit, a bounce.
    d.track("$pageview", "u6", "2026-11-03 12:00:00", session_id="s0")

    out = d.run(SessionsQuery(date_from="2026-11-08", date_to="2026-11-14"))
    assert out["visits"] == 3
    assert out["bounce_rate"] == pytest.approx(66.67)
    assert out["avg_duration_seconds"] == pytest.approx((600 + 30 + 0) / 3, abs=0.1)
    assert out["views_per_visit"] == pytest.approx(5 / 3, abs=0.01)
    assert out["previous"]["visits"] == 1
    assert out["previous"]["bounce_rate"] == 100.0
    assert out["comparison"]["visits"]["change_pct"] == 200.0


def test_no_visits_is_not_a_division_by_zero(dataset: Factory) -> None:
    d = dataset()
    d.track("signup", "u1", "2026-11-10 10:00:00")
    out = d.run(SessionsQuery(date_from="2026-11-08", date_to="2026-11-14"))
    assert out["visits"] == 0
    assert out["bounce_rate"] is None
    assert out["avg_duration_seconds"] is None


def test_sessions_endpoint(
    client: Any, project: dict[str, Any], write_key: str, read_key: str
) -> None:
    sent = client.post(
        "/api/v1/events",
        json={
            "batch": [
                {
                    "type": "page",
                    "anonymous_id": "v",
                    "session_id": "x1",
                    "context": {"page": {"url": "https://a.example/"}},
                },
                {
                    "type": "page",
                    "anonymous_id": "v",
                    "session_id": "x1",
                    "context": {"page": {"url": "https://a.example/b"}},
                },
            ]
        },
        headers={"X-API-Key": write_key},
    )
    assert sent.status_code == 202, sent.text
    out = client.get(
        f"/api/v1/projects/{project['id']}/stats/sessions",
        params={"date_from": "-1d"},
        headers={"X-API-Key": read_key},
    )
    assert out.status_code == 200, out.text
    body = out.json()
    assert body["visits"] == 1
    assert body["bounce_rate"] == 0.0
    assert body["views_per_visit"] == 2.0
