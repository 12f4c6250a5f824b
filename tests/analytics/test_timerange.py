"""Date ranges in the project's zone."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from sextant.analytics.timerange import resolve
from sextant.core.errors import BadRequest

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)  # 21:00 in Tokyo, 07:00 in New York


def _r(date_from: str | None, tz: str = "UTC", **kw: object) -> tuple[str, str, str]:
    rng = resolve(
        date_from=date_from,
        date_to=kw.get("date_to"),  # type: ignore[arg-type]
        tz_name=tz,
        interval=kw.get("interval"),  # type: ignore[arg-type]
        now=NOW,
    )
    return rng.iso(rng.start), rng.iso(rng.end), rng.interval


def test_relative_ranges_are_anchored_in_the_project_zone() -> None:
    assert _r("-7d", "Asia/Tokyo") == (
        "2026-11-14T00:00:00+09:00",
        "2026-11-20T21:00:00+09:00",
        "day",
    )
    assert _r("-24h") == ("2026-11-19T12:00:00+00:00", "2026-11-20T12:00:00+00:00", "hour")
    assert _r("mtd", "America/New_York")[0] == "2026-11-01T00:00:00-04:00"
    assert _r("ytd")[0] == "2026-01-01T00:00:00+00:00"
    assert _r("-30d")[0] == "2026-10-22T00:00:00+00:00"


def test_absolute_dates_cover_whole_local_days() -> None:
    start, end, _ = _r("2026-11-01", "Asia/Tokyo", date_to="2026-11-02")
    assert (start, end) == ("2026-11-01T00:00:00+09:00", "2026-11-03T00:00:00+09:00")


def test_dst_change_keeps_local_midnights() -> None:
    # Europe/Berlin leaves summer time on 2026-10-25.
    rng = resolve(
        date_from="2026-10-24",
        date_to="2026-10-26",
        tz_name="Europe/Berlin",
        interval="day",
        now=NOW,
    )
    assert rng.buckets() == ["2026-10-24", "2026-10-25", "2026-10-26"]
    assert rng.iso(rng.start) == "2026-10-24T00:00:00+02:00"
    assert rng.iso(rng.end) == "2026-10-27T00:00:00+01:00"
    hourly = resolve(
        date_from="2026-10-25",
        date_to="2026-10-25",
        tz_name="Europe/Berlin",
        interval="hour",
        now=NOW,
    )
    assert len(hourly.buckets()) == 24  # 25 real hours, the repeated 02:00 is one local label


@pytest.mark.parametrize(
    ("date_from", "tz", "message"),
    [
        ("yesterday", "UTC", "date_from:"),
        ("-0d", "UTC", "date_from:"),
        ("-7d", "Mars/Olympus", "timezone:"),
        ("2026-12-01", "UTC", "date_from: must be before date_to"),
    ],
)
def test_bad_input_is_a_400_naming_the_field(date_from: str, tz: str, message: str) -> None:
    with pytest.raises(BadRequest) as info:
        _r(date_from, tz)
    assert info.value.message.startswith(message)


def test_ranges_beyond_the_calendar_are_clamped_or_refused() -> None:
    """Found by fuzzing: these were 500s (OverflowError), not answers."""
    # Further back than anything can be: everything since 1970.
    assert _r("-99999y", "Europe/Berlin")[0] == "1970-01-01T01:00:00+01:00"
    assert _r("-99999M")[0] == "1970-01-01T00:00:00+00:00"
    assert _r("1900-01-01")[0] == "1970-01-01T00:00:00+00:00"
    for date_from, date_to in (
        ("0001-01-01", None),  # the year 1 in Berlin is before the year 1 in UTC
        ("-7d", "9999-12-31"),
        ("-7d", "2300-01-01"),
    ):
        with pytest.raises(BadRequest) as err:
            _r(date_from, "Europe/Berlin", date_to=date_to)
        assert "date_" in err.value.message
    # A range starting in 1970 still has a previous period and buckets.
    rng = resolve(
        date_from="1970-01-01", date_to="1971-01-01", tz_name="UTC", interval="month", now=NOW
    )
    assert rng.previous().end == rng.start
    assert len(rng.buckets()) == 13
