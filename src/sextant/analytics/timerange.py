"""Date ranges and time buckets, evaluated in the project's time zone."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from sextant.analytics.schemas import Interval
from sextant.core.errors import BadRequest

MAX_BUCKETS = 5000
_RELATIVE = re.compile(r"-(\d{1,5})(m|h|d|w|M|y)\Z")
_STEP = {
    "minute": timedelta(minutes=1),
    "hour": timedelta(hours=1),
}


@lru_cache(maxsize=1)
def _zones() -> frozenset[str]:
    return frozenset(available_timezones())


def zone(name: str) -> ZoneInfo:
    """A validated IANA zone; the name is later bound into SQL, so it must be exact."""
    if name not in _zones():
        raise BadRequest(f"timezone: unknown IANA time zone {name!r}")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise BadRequest(f"timezone: unknown IANA time zone {name!r}") from exc


@dataclass(frozen=True, slots=True)
class TimeRange:
    start: datetime  # aware, UTC
    end: datetime  # aware, UTC, exclusive
    tz: str
    interval: Interval

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.tz)

    def iso(self, moment: datetime) -> str:
        return moment.astimezone(self.zone).isoformat()

    def previous(self) -> TimeRange:
        """The period of the same length that ends where this one starts."""
        length = self.end - self.start
        return TimeRange(self.start - length, self.start, self.tz, self.interval)

    @property
    def minutes(self) -> float:
        return max((self.end - self.start).total_seconds() / 60.0, 1 / 60)

    def buckets(self) -> list[str]:
        """Every bucket label in the range, as the SQL bucket expression renders it."""
        tz = self.zone
        labels: list[str] = []
        if self.interval in _STEP:
            step = _STEP[self.interval]
            cursor = floor_local(self.start.astimezone(tz), self.interval).astimezone(UTC)
            seen: set[str] = set()
            while cursor < self.end:
                label = floor_local(cursor.astimezone(tz), self.interval).strftime(
                    "%Y-%m-%d %H:%M:%S"
                )
                if label not in seen:
                    seen.add(label)
                    labels.append(label)
                cursor += step
                if len(labels) > MAX_BUCKETS:
                    break
        else:
            day = floor_local(self.start.astimezone(tz), self.interval).date()
            last = (self.end - timedelta(microseconds=1)).astimezone(tz).date()
            while day <= last:
                labels.append(day.isoformat())
                day = _next_day_bucket(day, self.interval)
                if len(labels) > MAX_BUCKETS:
                    break
        if len(labels) > MAX_BUCKETS:
            raise BadRequest(
                f"interval: {self.interval!r} makes more than {MAX_BUCKETS} buckets for this "
                "date range; choose a longer interval or a shorter range"
            )
        return labels

    def label_iso(self, label: str) -> str:
        """ISO 8601 with the zone's offset for a bucket label."""
        if len(label) == 10:
            naive = datetime.fromisoformat(label)
        else:
            naive = datetime.strptime(label, "%Y-%m-%d %H:%M:%S")
        return naive.replace(tzinfo=self.zone).isoformat()


def _next_day_bucket(day: date, interval: Interval) -> date:
    if interval == "day":
        return day + timedelta(days=1)
    if interval == "week":
        return day + timedelta(days=7)
    if day.month == 12:
        return date(day.year + 1, 1, 1)
    return date(day.year, day.month + 1, 1)


def floor_local(moment: datetime, interval: Interval) -> datetime:
    """Floor an aware local datetime to the start of its bucket (weeks start on Monday)."""
    if interval == "minute":
        return moment.replace(second=0, microsecond=0)
    if interval == "hour":
        return moment.replace(minute=0, second=0, microsecond=0)
    tz = moment.tzinfo
    day = moment.date()
    if interval == "week":
        day = day - timedelta(days=day.weekday())
    elif interval == "month":
        day = day.replace(day=1)
    return datetime(day.year, day.month, day.day, tzinfo=tz)


def _parse_point(value: str, tz: ZoneInfo, *, field: str, end: bool) -> datetime:
    try:
        if len(value) == 10:
            day = date.fromisoformat(value)
            moment = datetime(day.year, day.month, day.day, tzinfo=tz)
            # A bare date as the end means "through the end of that day".
            return moment + timedelta(days=1) if end else moment
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise BadRequest(
            f"{field}: {value!r} is not an ISO date/datetime or one of "
            "-24h, -7d, -30d, mtd, ytd, all"
        ) from exc
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=tz)
    return parsed


def default_interval(start: datetime, end: datetime) -> Interval:
    span = end - start
    if span <= timedelta(hours=2):
        return "minute"
    if span <= timedelta(days=2):
        return "hour"
    if span <= timedelta(days=180):
        return "day"
    if span <= timedelta(days=1100):
        return "week"
    return "month"


def resolve(
    *,
    date_from: str | None,
    date_to: str | None,
    tz_name: str,
    interval: Interval | None,
    now: datetime,
    first_event: datetime | None = None,
    default_from: str = "-7d",
) -> TimeRange:
    """Turn user input into an exact [start, end) range in UTC plus the interval to use.

    Relative ranges are anchored in the project's zone: `-7d` is today and the six days
    before it (from local midnight), `mtd` starts at the first of this month locally, `all`
    starts at the project's first event.
    """
    tz = zone(tz_name)
    try:
        start, end = _resolve(date_from, date_to, tz, now, first_event, default_from)
    except OverflowError:
        raise BadRequest(
            f"date_from/date_to: outside the years {EARLIEST.year} to {LATEST.year - 1}"
        ) from None
    if end > LATEST:
        raise BadRequest(f"date_to: after the year {LATEST.year - 1}")
    # Nothing is older than 1970 (ingestion refuses it): a longer range asks for everything.
    start = max(start, EARLIEST)
    if start >= end:
        raise BadRequest("date_from: must be before date_to")
    chosen = interval or default_interval(start, end)
    return TimeRange(start, end, tz_name, chosen)


# The moments a range may span (DateTime64 holds 1900 to 2299; no event is before 1970).
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(2200, 1, 1, tzinfo=UTC)


def _resolve(
    date_from: str | None,
    date_to: str | None,
    tz: ZoneInfo,
    now: datetime,
    first_event: datetime | None,
    default_from: str,
) -> tuple[datetime, datetime]:
    local_now = now.astimezone(tz)
    end = _parse_point(date_to, tz, field="date_to", end=True) if date_to else local_now
    text = (date_from or default_from).strip()
    relative = _RELATIVE.match(text)
    if relative:
        amount, unit = int(relative[1]), relative[2]
        if amount < 1:
            raise BadRequest(f"date_from: {text!r} must go back at least one unit")
        local_end = end.astimezone(tz)
        try:
            start = _back(end, local_end, amount, unit)
        except OverflowError:
            start = EARLIEST.astimezone(tz)  # before the year 1: everything there is
        start = _normalise(start.replace(tzinfo=None), tz)
    elif text == "mtd":
        start = floor_local(local_now, "month")
    elif text == "ytd":
        start = datetime(local_now.year, 1, 1, tzinfo=tz)
    elif text == "all":
        first = first_event.astimezone(tz) if first_event else end.astimezone(tz)
        start = floor_local(first, "day")
    else:
        start = _parse_point(text, tz, field="date_from", end=False)
    # In UTC: OverflowError here for the years 1 and 9999 of some zones.
    return start.astimezone(UTC), end.astimezone(UTC)


def _back(end: datetime, local_end: datetime, amount: int, unit: str) -> datetime:
    """The start of a relative range (`-7d`: today and the six days before it)."""
    if unit == "m":
        return end - timedelta(minutes=amount)
    if unit == "h":
        return end - timedelta(hours=amount)
    days = {"d": 1, "w": 7, "M": 30, "y": 365}[unit] * amount - 1
    return floor_local(local_end, "day") - timedelta(days=days)


def _normalise(naive_local: datetime, tz: ZoneInfo) -> datetime:
    """Attach the zone to a local wall time (after day arithmetic across DST changes)."""
    return naive_local.replace(tzinfo=tz)
