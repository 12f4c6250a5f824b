"""Correctness of every report on small hand-built data sets (answers worked out by hand)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from sextant.analytics.schemas import BreakdownStatsQuery, SummaryQuery
from sextant.core.errors import BadRequest

Factory = Callable[..., Any]


def _series(out: dict[str, Any], i: int = 0) -> dict[str, Any]:
    return {p["bucket"][:10]: p["value"] for p in out["series"][i]["data"]}


def test_funnel_out_of_order_and_out_of_window(dataset: Factory) -> None:
    d = dataset()
    day = "2026-11-10"
    # A converts fully: 10 min per step.
    d.track("$pageview", "A", f"{day} 10:00:00", browser="Chrome")
    d.track("signup", "A", f"{day} 10:10:00")
    d.track("purchase", "A", f"{day} 10:20:00")
    # B signs up BEFORE viewing a page: out of order, so only step 1.
    d.track("signup", "B", f"{day} 09:00:00")
    d.track("$pageview", "B", f"{day} 10:00:00", browser="Chrome")
    # C signs up 25 h later: outside the 24 h window, so only step 1.
    d.track("$pageview", "C", f"{day} 10:00:00", browser="Safari")
    d.track("signup", "C", "2026-11-11 11:00:00")
    # D: signup after 30 min, purchase after 24 h 40 min (out of window): step 2.
    d.track("$pageview", "D", f"{day} 10:00:00", browser="Safari")
    d.track("signup", "D", f"{day} 10:30:00")
    d.track("purchase", "D", "2026-11-11 10:40:00")
    # E only purchases: never enters the funnel.
    d.track("purchase", "E", f"{day} 10:00:00")
    # F: signup 2 h later: step 2.
    d.track("$pageview", "F", f"{day} 10:00:00", browser="Firefox")
    d.track("signup", "F", f"{day} 12:00:00")
    steps = [{"event": "$pageview"}, {"event": "signup"}, {"event": "purchase"}]
    body = {"kind": "funnel", "steps": steps, "date_from": "2026-11-01", "date_to": "2026-11-19"}

    out = d.query(body)
    s = out["steps"]
    assert [x["persons"] for x in s] == [5, 3, 1]
    assert [x["conversion_from_first"] for x in s] == [100.0, 60.0, 20.0]
    assert [x["conversion_from_previous"] for x in s] == [100.0, 60.0, 33.33]
    assert [x["drop_off"] for x in s] == [0, 2, 2]
    # Times to convert: step 2 = A 600 s, D 1800 s, F 7200 s -> median 1800; step 3 = A 600.
    assert s[1]["median_seconds_to_convert"] == 1800.0
    assert s[2]["median_seconds_to_convert"] == 600.0
    assert out["cached"] is False
    assert out["date_from"].startswith("2026-11-01T00:00:00")

    # Any order: B's earlier signup now counts (within 1 h of the page view).
    anyorder = d.query({**body, "order": "any"})
    assert [x["persons"] for x in anyorder["steps"]] == [5, 4, 1]

    # Breakdown by the browser of the first step, top 2 plus "$other".
    split = d.query({**body, "breakdown": {"property": "browser", "limit": 2}})
    groups = {g["value"]: [x["persons"] for x in g["steps"]] for g in split["breakdown"]}
    assert groups == {"Chrome": [2, 1, 1], "Safari": [2, 1, 0], "$other": [1, 1, 0]}


def test_strict_funnel_rejects_events_in_between(dataset: Factory) -> None:
    d = dataset()
    d.track("$pageview", "G", "2026-11-10 10:00:00")
    d.track("button_clicked", "G", "2026-11-10 10:01:00")
    d.track("signup", "G", "2026-11-10 10:02:00")
    body = {
        "kind": "funnel",
        "steps": [{"event": "$pageview"}, {"event": "signup"}],
        "date_from": "2026-11-01",
        "date_to": "2026-11-19",
    }
    assert [x["persons"] for x in d.query(body)["steps"]] == [1, 1]
    assert [x["persons"] for x in d.query({**body, "order": "strict"})["steps"]] == [1, 0]


def test_funnel_step_filters(dataset: Factory) -> None:
    d = dataset()
    d.track("$pageview", "a", "2026-11-10 10:00:00", path="/pricing")
    d.track("signup", "a", "2026-11-10 10:01:00")
    d.track("$pageview", "b", "2026-11-10 10:00:00", path="/blog")
    d.track("signup", "b", "2026-11-10 10:01:00")
    body = {
        "kind": "funnel",
        "steps": [
            {"event": "$pageview", "filters": [{"property": "path", "value": "/pricing"}]},
            {"event": "signup"},
        ],
        "date_from": "2026-11-01",
        "date_to": "2026-11-19",
    }
    assert [x["persons"] for x in d.query(body)["steps"]] == [1, 1]


def test_retention_matrix(dataset: Factory) -> None:
    d = dataset()
    d.track("$pageview", "u1", "2026-11-01 08:00:00")
    d.track("$pageview", "u1", "2026-11-02 08:00:00")
    d.track("$pageview", "u1", "2026-11-04 08:00:00")
    d.track("$pageview", "u2", "2026-11-01 09:00:00")
    d.track("$pageview", "u2", "2026-11-03 09:00:00")
    d.track("$pageview", "u3", "2026-11-02 09:00:00")
    d.track("$pageview", "u3", "2026-11-03 09:00:00")
    # u4 was first seen before the range: not in any cohort of the range.
    d.track("$pageview", "u4", "2026-10-30 09:00:00")
    d.track("$pageview", "u4", "2026-11-02 09:00:00")
    out = d.query(
        {
            "kind": "retention",
            "date_from": "2026-11-01",
            "date_to": "2026-11-04",
            "interval": "day",
            "periods": 3,
        }
    )
    table = {c["cohort"][:10]: c["values"] for c in out["cohorts"]}
    assert table == {
        "2026-11-01": [2, 1, 1, 1],
        "2026-11-02": [1, 1, 0, 0],
        "2026-11-03": [0, 0, 0, 0],
        "2026-11-04": [0, 0, 0, 0],
    }
    assert out["cohorts"][0]["rates"] == [100.0, 50.0, 50.0, 50.0]
    # Day 1: u1 and u3 came back the next day, u2 did not; all three are old enough.
    assert out["rates"]["day_1"] == pytest.approx(66.67)
    assert out["rates"]["day_7"] is None  # nobody is 7 days old within the range


def test_retention_start_and_return_events(dataset: Factory) -> None:
    d = dataset()
    d.track("signup", "a", "2026-11-01 08:00:00")
    d.track("$pageview", "a", "2026-11-02 08:00:00")
    d.track("purchase", "a", "2026-11-03 08:00:00")
    d.track("signup", "b", "2026-11-01 08:00:00")
    d.track("purchase", "b", "2026-11-02 08:00:00")
    out = d.query(
        {
            "kind": "retention",
            "start_event": "signup",
            "return_event": "purchase",
            "date_from": "2026-11-01",
            "date_to": "2026-11-03",
            "periods": 2,
        }
    )
    assert out["cohorts"][0]["values"] == [2, 1, 1]


def test_api_percentiles_and_error_rates(dataset: Factory) -> None:
    d = dataset()
    for i in range(1, 11):
        status = 500 if i == 10 else (404 if i == 9 else 200)
        route = "/v1/items" if i <= 6 else "/v1/orders"
        d.track(
            "$api_request",
            "svc",
            f"2026-11-10 10:{i:02d}:00",
            type="api",
            http_method="GET",
            http_route=route,
            http_status=status,
            duration_ms=float(i * 10),
        )
    out = d.query(
        {
            "kind": "api_metrics",
            "date_from": "2026-11-10T10:00:00",
            "date_to": "2026-11-10T11:00:00",
            "sort": "p95",
        }
    )
    s = out["summary"]
    assert s["request_count"] == 10
    assert s["error_count"] == 2
    assert s["error_rate"] == 20.0
    assert s["server_error_count"] == 1
    assert s["server_error_rate"] == 10.0
    # Linear interpolation between order statistics of 10..100.
    assert (s["avg"], s["p50"], s["p95"], s["p99"], s["max"]) == (
        55.0,
        55.0,
        pytest.approx(95.5),
        pytest.approx(99.1),
        100.0,
    )
    assert s["requests_per_minute"] == pytest.approx(10 / 60, abs=1e-3)
    assert out["interval"] == "minute"
    assert [(e["route"], e["request_count"]) for e in out["endpoints"]] == [
        ("/v1/orders", 4),
        ("/v1/items", 6),
    ]
    assert out["endpoints"][0]["p95"] == pytest.approx(98.5)
    assert len(out["series"]) == 60
    assert sum(p["request_count"] for p in out["series"]) == 10


def test_trend_median_and_sum_of_a_property(dataset: Factory) -> None:
    d = dataset()
    for amount in (5, 1, 3, 100):
        d.track("purchase", "a", "2026-11-10 10:00:00", properties=f'{{"amount": {amount}}}')
    out = d.query(
        {
            "kind": "trends",
            "date_from": "2026-11-10",
            "date_to": "2026-11-10",
            "series": [
                {"event": "purchase", "measure": "median", "property": "properties.amount"},
                {"event": "purchase", "measure": "sum", "property": "properties.amount"},
                {"event": "purchase", "measure": "p90", "property": "properties.amount"},
            ],
        }
    )
    assert out["series"][0]["total"] == 4.0  # (3 + 5) / 2
    assert out["series"][1]["total"] == 109.0
    assert out["series"][2]["total"] == pytest.approx(71.5)  # 5 + 0.7 * 95


def test_tokyo_day_is_not_a_utc_day(dataset: Factory) -> None:
    rows = [("late", "2026-11-18 14:30:00"), ("early", "2026-11-18 15:30:00")]
    tokyo, utc = dataset("Asia/Tokyo"), dataset("UTC")
    for d in (tokyo, utc):
        for who, at in rows:
            d.track("$pageview", who, at)
    body = {"kind": "trends", "date_from": "2026-11-18", "date_to": "2026-11-19", "interval": "day"}
    t = tokyo.query(body)
    # 14:30 UTC is 23:30 on the 18th in Tokyo; 15:30 UTC is 00:30 on the 19th.
    assert _series(t) == {"2026-11-18": 1, "2026-11-19": 1}
    assert t["date_from"] == "2026-11-18T00:00:00+09:00"
    assert t["date_to"] == "2026-11-20T00:00:00+09:00"
    assert t["series"][0]["data"][0]["bucket"] == "2026-11-18T00:00:00+09:00"
    assert _series(utc.query(body)) == {"2026-11-18": 2, "2026-11-19": 0}
    # Hour buckets in Tokyo: the two events fall into 23:00 and 00:00 local.
    hourly = tokyo.query({**body, "interval": "hour", "date_to": "2026-11-19T02:00:00"})
    counts = {p["bucket"]: p["value"] for p in hourly["series"][0]["data"] if p["value"]}
    assert counts == {"2026-11-18T23:00:00+09:00": 1, "2026-11-19T00:00:00+09:00": 1}
    assert len(hourly["series"][0]["data"]) == 26  # every hour filled, zeros included


def test_week_and_month_buckets_are_filled(dataset: Factory) -> None:
    d = dataset()
    d.track("x", "a", "2026-11-03 10:00:00")  # a Tuesday: week of Monday 2nd
    weekly = d.query(
        {"kind": "trends", "date_from": "2026-10-20", "date_to": "2026-11-20", "interval": "week"}
    )
    assert _series(weekly) == {
        "2026-10-19": 0,
        "2026-10-26": 0,
        "2026-11-02": 1,
        "2026-11-09": 0,
        "2026-11-16": 0,
    }
    monthly = d.query(
        {"kind": "trends", "date_from": "2026-09-15", "date_to": "2026-11-20", "interval": "month"}
    )
    assert _series(monthly) == {"2026-09-01": 0, "2026-10-01": 0, "2026-11-01": 1}


def test_compare_with_an_empty_previous_period(dataset: Factory) -> None:
    d = dataset()
    d.track("$pageview", "a", "2026-11-15 10:00:00")
    d.track("$pageview", "b", "2026-11-16 10:00:00")
    out = d.query(
        {
            "kind": "trends",
            "date_from": "2026-11-15",
            "date_to": "2026-11-16",
            "compare": True,
            "series": [{"measure": "total"}, {"measure": "unique_persons"}],
        }
    )
    assert out["previous"]["date_from"].startswith("2026-11-13T00:00:00")
    cmp = out["series"][0]["compare"]
    assert cmp == {"value": 2, "previous": 0, "change_pct": None, "change": "new"}
    assert out["series"][0]["data"][0]["previous"] == 0
    # And a non-empty previous period: 1 -> 2 is +100 %.
    d.track("$pageview", "c", "2026-11-13 10:00:00")
    again = d.query(
        {"kind": "trends", "date_from": "2026-11-15", "date_to": "2026-11-16", "compare": True}
    )
    assert again["series"][0]["compare"]["change_pct"] == 100.0
    assert again["series"][0]["compare"]["change"] == "up"

    summary = d.run(SummaryQuery(date_from="2026-11-15", date_to="2026-11-16"))
    assert summary["total_events"] == 2
    assert summary["unique_users"] == 2
    assert summary["comparison"]["total_events"]["previous"] == 1


def test_person_merging_after_identify(dataset: Factory) -> None:
    d = dataset()
    d.track("$pageview", "anon-1", "2026-11-10 10:00:00")
    d.track("signup", "user-1", "2026-11-10 10:05:00")
    d.track(
        "$identify",
        "user-1",
        "2026-11-10 10:05:01",
        type="identify",
        properties='{"traits": {"email": "a@example.com", "plan": "pro"}}',
    )
    body = {
        "kind": "trends",
        "date_from": "2026-11-10",
        "date_to": "2026-11-10",
        "series": [{"measure": "unique_persons"}],
    }
    assert d.query(body)["series"][0]["total"] == 2
    # A stale mapping first, then the one identify wrote: the latest wins.
    d.alias("anon-1", "someone-else", at="2026-11-10 09:00:00")
    d.alias("anon-1", "user-1", at="2026-11-10 10:05:01")
    assert d.query(body)["series"][0]["total"] == 1
    funnel = d.query(
        {
            "kind": "funnel",
            "steps": [{"event": "$pageview"}, {"event": "signup"}],
            "date_from": "2026-11-10",
            "date_to": "2026-11-10",
        }
    )
    assert [s["persons"] for s in funnel["steps"]] == [1, 1]
    person = d.query({"kind": "person", "distinct_id": "anon-1"})
    assert person["person_id"] == "user-1"
    assert person["distinct_ids"] == ["anon-1", "user-1"]
    assert person["total_events"] == 3
    assert person["properties"] == {"email": "a@example.com", "plan": "pro"}
    assert [e["event"] for e in person["recent_events"]] == ["$identify", "signup", "$pageview"]
    assert person["first_seen"].startswith("2026-11-10T10:00:00")


def test_retried_message_counts_once(dataset: Factory) -> None:
    d = dataset()
    row = d.event("$pageview", "a", "2026-11-10 10:00:00", message_id="m-1")
    d.add(row)
    d.add({**row, "received_at": row["received_at"].replace(second=5)})  # separate part
    d.track("$pageview", "a", "2026-11-10 10:00:00", message_id="m-2")
    out = d.query({"kind": "trends", "date_from": "2026-11-10", "date_to": "2026-11-10"})
    assert out["series"][0]["total"] == 2


def test_bots_are_excluded_unless_asked(dataset: Factory) -> None:
    d = dataset()
    d.track("$pageview", "human", "2026-11-10 10:00:00")
    d.track("$pageview", "crawler", "2026-11-10 10:00:00", is_bot=1)
    body = {"kind": "trends", "date_from": "2026-11-10", "date_to": "2026-11-10"}
    assert d.query(body)["series"][0]["total"] == 1
    assert d.query({**body, "include_bots": True})["series"][0]["total"] == 2


def test_filters_and_groups(dataset: Factory) -> None:
    d = dataset()
    d.track("e", "1", "2026-11-10 10:00:00", country="DE", properties='{"plan": "pro", "n": 5}')
    d.track("e", "2", "2026-11-10 10:00:00", country="FR", properties='{"plan": "free", "n": 1}')
    d.track("e", "3", "2026-11-10 10:00:00", country="US", path="/Pricing/x")
    d.track("e", "4", "2026-11-10 10:00:00", country="DE", properties='{"flag": true}')

    def count(*filters: Any) -> int:
        out = d.query(
            {
                "kind": "trends",
                "date_from": "2026-11-10",
                "date_to": "2026-11-10",
                "filters": list(filters),
            }
        )
        return int(out["series"][0]["total"])

    assert count({"property": "country", "op": "eq", "value": "DE"}) == 2
    assert count({"property": "country", "op": "neq", "value": "DE"}) == 2
    assert count({"property": "country", "op": "in", "value": ["FR", "US"]}) == 2
    assert count({"property": "country", "op": "not_in", "value": ["FR", "US"]}) == 2
    assert count({"property": "path", "op": "contains", "value": "pricing"}) == 1
    assert count({"property": "path", "op": "not_contains", "value": "pricing"}) == 3
    assert count({"property": "properties.plan", "op": "eq", "value": "pro"}) == 1
    assert count({"property": "properties.n", "op": "gt", "value": 1}) == 1
    assert count({"property": "properties.n", "op": "gte", "value": 1}) == 2
    assert count({"property": "properties.n", "op": "lt", "value": 5}) == 3  # missing = 0
    assert count({"property": "properties.n", "op": "lte", "value": 5}) == 4
    assert count({"property": "properties.n", "op": "eq", "value": 5}) == 1
    assert count({"property": "properties.flag", "op": "eq", "value": True}) == 1
    assert count({"property": "properties.plan", "op": "is_set"}) == 2
    assert count({"property": "properties.plan", "op": "is_not_set"}) == 2
    assert count({"property": "path", "op": "is_set"}) == 1
    group = {
        "op": "or",
        "filters": [
            {"property": "country", "value": "FR"},
            {
                "op": "and",
                "filters": [
                    {"property": "country", "value": "DE"},
                    {"property": "properties.plan", "value": "pro"},
                ],
            },
        ],
    }
    assert count(group) == 2
    # A value that looks like SQL stays a value.
    assert count({"property": "country", "value": "DE' OR 1=1 --"}) == 0


def test_other_projects_rows_are_never_read(dataset: Factory) -> None:
    mine, theirs = dataset(), dataset()
    mine.track("e", "a", "2026-11-10 10:00:00", country="DE")
    theirs.track("e", "b", "2026-11-10 10:00:00", country="FR")
    out = mine.query(
        {
            "kind": "trends",
            "date_from": "2026-11-10",
            "date_to": "2026-11-10",
            "filters": [
                {
                    "op": "or",
                    "filters": [
                        {"property": "country", "value": "FR"},
                        {"property": "country", "value": "DE"},
                    ],
                }
            ],
        }
    )
    assert out["series"][0]["total"] == 1


def test_breakdown_top_n_plus_other(dataset: Factory) -> None:
    d = dataset()
    for browser, n in (("Chrome", 3), ("Safari", 2), ("Firefox", 1), ("Edge", 1)):
        for i in range(n):
            d.track("$pageview", f"{browser}-{i}", "2026-11-10 10:00:00", browser=browser)
    d.track("$pageview", "Chrome-0", "2026-11-09 10:00:00", browser="Chrome")  # previous day
    out = d.run(
        BreakdownStatsQuery(
            property="browser", limit=2, date_from="2026-11-10", date_to="2026-11-10"
        )
    )
    got = [
        (r["value"], r["events"], r["unique_users"], r["previous_events"]) for r in out["results"]
    ]
    assert got == [("Chrome", 3, 3, 1), ("Safari", 2, 2, 0), ("$other", 2, 2, 0)]
    trends = d.query(
        {
            "kind": "trends",
            "date_from": "2026-11-10",
            "date_to": "2026-11-10",
            "breakdown": {"property": "browser", "limit": 2},
        }
    )
    groups = {g["value"]: g["total"] for g in trends["series"][0]["breakdown"]}
    assert groups == {"Chrome": 3, "Safari": 2, "$other": 2}
    assert trends["series"][0]["total"] == 7


def test_summary_dimensions_with_previous(dataset: Factory) -> None:
    d = dataset()
    d.track("$pageview", "a", "2026-11-10 10:00:00", path="/", browser="Chrome", country="DE")
    d.track(
        "$pageview", "b", "2026-11-10 11:00:00", path="/docs", browser="Chrome", utm_source="hn"
    )
    d.track("signup", "b", "2026-11-10 11:01:00", browser="Chrome")
    d.track("$pageview", "c", "2026-11-09 11:00:00", path="/", browser="Safari")
    out = d.run(SummaryQuery(date_from="2026-11-10", date_to="2026-11-10"))
    assert (out["total_events"], out["unique_users"]) == (3, 2)
    assert out["events"][0] == {
        "value": "$pageview",
        "events": 2,
        "unique_users": 2,
        "previous_events": 1,
        "previous_unique_users": 1,
        "change_pct": 100.0,
    }
    assert [(p["value"], p["events"], p["previous_events"]) for p in out["top_pages"]] == [
        ("/", 1, 1),
        ("/docs", 1, 0),
    ]
    assert out["browsers"][0]["value"] == "Chrome"
    assert out["browsers"][0]["events"] == 3
    assert {u["value"] for u in out["utm_sources"]} == {"", "hn"}


def test_active_users_dau_wau_mau(dataset: Factory) -> None:
    d = dataset()
    d.track("x", "a", "2026-11-01 10:00:00")
    d.track("x", "a", "2026-11-02 10:00:00")
    d.track("x", "b", "2026-11-02 10:00:00")
    d.track("x", "c", "2026-10-20 10:00:00")  # 13 days before Nov 2: in MAU, not WAU
    out = d.query({"kind": "active_users", "date_from": "2026-11-01", "date_to": "2026-11-09"})
    rows = {p["bucket"][:10]: (p["dau"], p["wau"], p["mau"]) for p in out["data"]}
    assert rows["2026-11-01"] == (1, 1, 2)
    assert rows["2026-11-02"] == (2, 2, 3)
    assert rows["2026-11-08"] == (0, 2, 3)  # Nov 2 is still within 7 days
    assert rows["2026-11-09"] == (0, 0, 3)
    assert out["data"][1]["stickiness"] == pytest.approx(2 / 3, abs=1e-4)


def test_paths_next_and_previous(dataset: Factory) -> None:
    d = dataset()
    for who in ("a", "b"):
        d.track("$pageview", who, "2026-11-10 10:00:00")
        d.track("signup", who, "2026-11-10 10:01:00")
        d.track("purchase", who, "2026-11-10 10:02:00")
    d.track("$pageview", "c", "2026-11-10 10:00:00")
    d.track("exit", "c", "2026-11-10 10:01:00")
    base = {"kind": "paths", "date_from": "2026-11-10", "date_to": "2026-11-10"}
    nxt = d.query({**base, "event": "$pageview", "depth": 2})
    assert nxt["occurrences"] == 3
    assert nxt["paths"] == [
        {"path": ["signup", "purchase"], "count": 2},
        {"path": ["exit"], "count": 1},
    ]
    assert nxt["steps"][0]["events"] == [
        {"event": "signup", "count": 2},
        {"event": "exit", "count": 1},
    ]
    prev = d.query({**base, "event": "purchase", "direction": "previous", "depth": 2})
    assert prev["paths"] == [{"path": ["signup", "$pageview"], "count": 2}]


def test_web3_volume_is_exact_and_wallets_link_to_persons(dataset: Factory) -> None:
    d = dataset()
    big = 2**200
    d.track(
        "tx",
        "u1",
        "2026-11-10 10:00:00",
        type="web3",
        tx_hash="0x1",
        chain_id=1,
        token_symbol="ETH",
        tx_value=big + 1,
        tx_status="success",
        wallet_address="0xAA",
        contract_address="0xC1",
    )
    d.track(
        "tx",
        "u2",
        "2026-11-10 11:00:00",
        type="web3",
        tx_hash="0x2",
        chain_id=1,
        token_symbol="ETH",
        tx_value=big,
        tx_status="failed",
        wallet_address="0xaa",
        contract_address="0xC1",
    )
    d.track("wallet_connected", "u3", "2026-11-10 11:00:00", type="web3", wallet_address="0xBB")
    # One transaction reported twice, as submitted and then confirmed (the hash in another
    # letter case): one transaction, its last status, its value once.
    for at, status, tx_hash in (("12:00", "submitted", "0xABC3"), ("12:01", "confirmed", "0xabc3")):
        d.track(
            f"tx_{status}",
            "u3",
            f"2026-11-10 {at}:00",
            type="web3",
            tx_hash=tx_hash,
            chain_id=137,
            token_symbol="MATIC",
            tx_value=5,
            tx_status=status,
            wallet_address="0xBB",
            contract_address="0xC2",
        )
    d.alias("u2", "u1")
    out = d.query({"kind": "web3", "date_from": "2026-11-10", "date_to": "2026-11-10"})
    assert out["summary"] == {
        "tx_count": 3,
        "success_count": 2,
        "failed_count": 1,
        "success_rate": round(200 / 3, 2),
        "unique_wallets": 2,
        "unique_persons": 2,
    }
    assert out["volume"] == [
        {"chain_id": 1, "token": "ETH", "tx_count": 2, "volume": str(2 * big + 1)},
        {"chain_id": 137, "token": "MATIC", "tx_count": 1, "volume": "5"},
    ]
    wallets = {w["wallet"]: (w["persons"], w["tx_count"]) for w in out["wallets"]}
    assert wallets == {"0xaa": (["u1"], 2), "0xbb": (["u3"], 1)}
    contracts = {c["contract"]: (c["tx_count"], c["volume"]) for c in out["top_contracts"]}
    assert contracts == {"0xc1": (2, str(2 * big + 1)), "0xc2": (1, "5")}
    series = {p["bucket"][11:16]: (p["tx_count"], p["success_count"]) for p in out["series"]}
    assert (series["10:00"], series["11:00"], series["12:00"]) == ((1, 1), (1, 0), (1, 1))
    assert sum(p["tx_count"] for p in out["series"]) == 3
    # A wallet or contract filter matches whatever case it is written in.
    for prop, value in (("contract_address", "0xc2"), ("wallet_address", "0xbB")):
        one = d.query(
            {
                "kind": "web3",
                "date_from": "2026-11-10",
                "date_to": "2026-11-10",
                "filters": [{"property": prop, "op": "eq", "value": value}],
            }
        )
        assert one["summary"]["tx_count"] == 1, prop
    total = d.query(
        {
            "kind": "trends",
            "date_from": "2026-11-10",
            "date_to": "2026-11-10",
            "series": [{"measure": "sum", "property": "tx_value"}],
            "filters": [{"property": "tx_value", "op": "gt", "value": str(big)}],
        }
    )
    assert total["series"][0]["total"] == str(big + 1)


def test_events_feed_pages_newest_first(dataset: Factory) -> None:
    d = dataset()
    for minute in range(5):
        d.track("click", "a", f"2026-11-10 10:0{minute}:00", properties=f'{{"i": {minute}}}')
    seen: list[int] = []
    cursor = None
    for _ in range(4):
        body: dict[str, Any] = {
            "kind": "events",
            "limit": 2,
            "date_from": "2026-11-10",
            "date_to": "2026-11-10",
        }
        if cursor:
            body["cursor"] = cursor
        page = d.query(body)
        seen.extend(e["properties"]["i"] for e in page["results"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [4, 3, 2, 1, 0]
    one = d.service.get_event(
        d.ctx,
        d.query({"kind": "events", "date_from": "2026-11-10", "date_to": "2026-11-10"})["results"][
            0
        ]["event_id"],
    )
    assert one["properties"] == {"i": 4}
    with pytest.raises(BadRequest):
        d.query({"kind": "events", "cursor": "not-a-cursor"})


def test_all_time_starts_at_the_first_event(dataset: Factory) -> None:
    d = dataset()
    d.track("x", "a", "2026-09-03 10:00:00")
    out = d.query({"kind": "trends", "date_from": "all", "interval": "month"})
    assert out["date_from"].startswith("2026-09-03T00:00:00")
    assert _series(out) == {"2026-09-01": 1, "2026-10-01": 0, "2026-11-01": 0}


@pytest.mark.parametrize("merged", [True, False])
def test_every_measure_with_and_without_merged_persons(dataset: Factory, merged: bool) -> None:
    d = dataset()
    if merged:  # two-phase plan: per distinct id, then mapped to persons
        d.alias("anon", "user")
    persons = 2 if merged else 3
    rows = [
        ("anon", "s1", 10.0, "2026-11-10 10:00:00"),
        ("user", "s1", 30.0, "2026-11-10 11:00:00"),
    ]
    rows += [
        ("other", "s2", 20.0, "2026-11-11 10:00:00"),
        ("other", "", 40.0, "2026-11-11 11:00:00"),
    ]
    for who, session, ms, at in rows:
        d.track("req", who, at, session_id=session, duration_ms=ms, tx_value=int(ms) * 10**20)
    measures = ["total", "unique_persons", "sessions"]
    numeric = ["sum", "avg", "min", "max", "median", "p90"]
    series = [{"measure": m} for m in measures] + [
        {"measure": m, "property": "duration_ms"} for m in numeric
    ]
    series.append({"measure": "max", "property": "tx_value"})
    out = d.query(
        {
            "kind": "trends",
            "date_from": "2026-11-10",
            "date_to": "2026-11-12",
            "interval": "day",
            "series": series,
        }
    )
    totals = [s["total"] for s in out["series"]]
    assert totals == [
        4,
        persons,
        2,
        100.0,
        25.0,
        10.0,
        40.0,
        25.0,
        pytest.approx(37.0),
        str(40 * 10**20),
    ]
    first_day = [s["data"][0]["value"] for s in out["series"]]
    assert first_day == [
        2,
        persons - 1,
        1,
        40.0,
        20.0,
        10.0,
        30.0,
        20.0,
        pytest.approx(28.0),
        str(30 * 10**20),
    ]
    empty_day = [s["data"][2]["value"] for s in out["series"]]
    assert empty_day == [0, 0, 0, 0, None, None, None, None, None, None]


def test_merged_persons_in_retention_active_users_and_paths(dataset: Factory) -> None:
    d = dataset()
    d.track("$pageview", "anon-9", "2026-11-01 10:00:00")
    d.track("signup", "user-9", "2026-11-02 10:00:00")
    rng = {"date_from": "2026-11-01", "date_to": "2026-11-03"}
    before = d.query({"kind": "retention", "periods": 2, **rng})
    assert [c["values"] for c in before["cohorts"]][:2] == [[1, 0, 0], [1, 0, 0]]
    d.alias("anon-9", "user-9")
    after = d.query({"kind": "retention", "periods": 2, **rng})
    assert [c["values"] for c in after["cohorts"]][:2] == [[1, 1, 0], [0, 0, 0]]
    active = d.query({"kind": "active_users", **rng})
    assert [(p["dau"], p["wau"]) for p in active["data"]] == [(1, 1), (1, 1), (0, 1)]
    paths = d.query({"kind": "paths", "event": "$pageview", **rng})
    assert paths["paths"] == [{"path": ["signup"], "count": 1}]


def test_breakdown_counts_merged_persons_once(dataset: Factory) -> None:
    d = dataset()
    d.alias("anon-5", "user-5")
    d.track("$pageview", "anon-5", "2026-11-10 10:00:00", browser="Chrome")
    d.track("$pageview", "user-5", "2026-11-10 11:00:00", browser="Chrome")
    d.track("$pageview", "user-5", "2026-11-09 11:00:00", browser="Chrome")
    out = d.run(
        BreakdownStatsQuery(property="browser", date_from="2026-11-10", date_to="2026-11-10")
    )
    row = out["results"][0]
    assert (row["value"], row["events"], row["unique_users"]) == ("Chrome", 2, 1)
    assert (row["previous_events"], row["previous_unique_users"]) == (1, 1)
