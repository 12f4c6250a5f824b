"""Weekly and monthly retention cohorts, bucketed in the project's time zone."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Factory = Callable[..., Any]


def cohort_table(out: dict[str, Any]) -> dict[str, list[int]]:
    return {c["cohort"][:10]: c["values"] for c in out["cohorts"]}


def test_weekly_retention_uses_local_weeks(dataset: Factory) -> None:
    d = dataset(tz="Asia/Tokyo")  # UTC+9; Mondays: Nov 2, 9, 16
    d.track("$pageview", "u1", "2026-11-02T10:00:00+09:00")  # week 0
    d.track("$pageview", "u1", "2026-11-10T10:00:00+09:00")  # week 1
    d.track("$pageview", "u1", "2026-11-17T10:00:00+09:00")  # week 2
    # Sunday 23:30 in Tokyo starts u2 in the week of Nov 2; 00:30 on Monday in Tokyo is
    # still Sunday in UTC, but locally it is week 1.
    d.track("$pageview", "u2", "2026-11-08T23:30:00+09:00")
    d.track("$pageview", "u2", "2026-11-09T00:30:00+09:00")
    d.track("$pageview", "u3", "2026-11-09T12:00:00+09:00")  # week of Nov 9, never back
    out = d.query(
        {
            "kind": "retention",
            "date_from": "2026-11-02",
            "date_to": "2026-11-22",
            "interval": "week",
            "periods": 2,
        }
    )
    assert cohort_table(out) == {
        "2026-11-02": [2, 2, 1],
        "2026-11-09": [1, 0, 0],
        "2026-11-16": [0, 0, 0],
    }


def test_monthly_retention(dataset: Factory) -> None:
    d = dataset(tz="America/New_York")
    d.track("signup", "a", "2026-08-15 12:00:00")
    d.track("signup", "a", "2026-09-20 12:00:00")  # month 1
    d.track("signup", "b", "2026-08-31 23:00:00")  # Aug 31, 19:00 in New York: August
    d.track("signup", "b", "2026-10-02 12:00:00")  # month 2
    d.track("signup", "c", "2026-09-01 03:00:00")  # Aug 31, 23:00 in New York: August too
    out = d.query(
        {
            "kind": "retention",
            "date_from": "2026-08-01",
            "date_to": "2026-10-31",
            "interval": "month",
            "periods": 2,
        }
    )
    assert cohort_table(out) == {
        "2026-08-01": [3, 1, 1],
        "2026-09-01": [0, 0, 0],
        "2026-10-01": [0, 0, 0],
    }
