"""Daily rollups: the common reports read pre-aggregated days instead of every event.

`rollup_daily` holds, per project, time zone and local day, the number of events and a
HyperLogLog sketch (`uniqCombined64(13)`) of the persons behind them for every value of the
common dimensions (all events, event name, browser, OS, device type, country, page path of
page views, referrer domain, UTM source/medium/campaign), split by the bot flag.

A report over a date range reads rollup rows for the local days that lie wholly inside the
range and are *clean* (built after the last write to any of their hours), and raw events for
everything else (today, partial days, days written since their build), in one statement:
both halves produce the same (day, dimension, value, events, sketch) rows and are merged.
So a rollup never makes an answer stale; it only makes the settled part of it cheap.

A day becomes dirty when
- events are inserted into it (the `rollup_writes_mv` materialized view marks the hour),
- a person link (identify/alias) regroups persons with events in it (`sync_aliases` marks
  the hours of the newly linked distinct ids before any rollup is read), or
- events are deleted (governance marks every hour of the project).

The builder (`RollupBuilder`) rebuilds dirty days once they have been quiet for a while, in
one pass per project, with the person mapping of that moment.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import structlog

from sextant.analytics import queries as q
from sextant.analytics.schemas import FunnelQuery, RetentionQuery
from sextant.analytics.timerange import TimeRange, zone
from sextant.core.eventstore import EventStore, EventStoreError

log = structlog.get_logger(__name__)

HLL_STATE = "uniqCombined64State(13)"
HLL_MERGE = "uniqCombined64Merge(13)"
HLL_MERGE_STATE = "uniqCombined64MergeState(13)"

# Dimension name -> the value of an event (a String). The page path counts page views only.
DIMENSIONS: dict[str, str] = {
    "": "''",
    "event": "toString(e.event)",
    "browser": "toString(e.browser)",
    "os": "toString(e.os)",
    "device_type": "toString(e.device_type)",
    "country": "toString(e.country)",
    "referrer_domain": "toString(e.referrer_domain)",
    "utm_source": "toString(e.utm_source)",
    "utm_medium": "toString(e.utm_medium)",
    "utm_campaign": "toString(e.utm_campaign)",
}
PAGE_DIMENSION = "path"  # value: e.path, for `$pageview` events only
ALL_DIMENSIONS = (*DIMENSIONS, PAGE_DIMENSION)

# The summary's lists, as rollup dimensions.
SUMMARY_DIMENSIONS = {
    "events": "event",
    "browsers": "browser",
    "os": "os",
    "device_types": "device_type",
    "countries": "country",
    "pages": PAGE_DIMENSION,
    "referrers": "referrer_domain",
    "utm_sources": "utm_source",
}

# The tables a build writes its rows to (all under one version per day).
ROLLUP_TABLES = (
    "rollup_daily",
    "rollup_hourly",
    "rollup_api_daily",
    "rollup_person_days",
    "rollup_person_events",
)

# A build records `built_at` this long before it started reading: a write whose mark was
# taken earlier is surely visible to the build (an insert commits well within it), and a
# later one makes the day dirty again.
BUILD_MARGIN = timedelta(seconds=30)
# Person links stored this long before a sync are looked at again by the next one: an insert
# takes its time from the clock before it becomes visible.
ALIAS_MARGIN = timedelta(seconds=10)
# How far the stored link mark trails before it is moved on.
ALIAS_MARK_STEP = timedelta(seconds=60)
_ROLLUP_SETTINGS = {"do_not_merge_across_partitions_select_final": 1, "join_use_nulls": 0}
# Up to this many stretches of days with one version are read as day ranges; beyond, a
# version lookup by day.
_MAX_STRETCHES = 4


def _ts(moment: datetime) -> str:
    return q._ts(moment)


def _naive(moment: datetime) -> datetime:
    """A UTC moment without its zone (the store returns either)."""
    return moment.astimezone(UTC).replace(tzinfo=None) if moment.tzinfo else moment


def dimension_pairs(dims: Iterable[str]) -> str:
    """`[(dim, value), ...]` of one event for ARRAY JOIN (the page path only for page views)."""
    wanted = list(dims)
    common = ", ".join(f"('{d}', {DIMENSIONS[d]})" for d in wanted if d in DIMENSIONS)
    pairs = f"[{common}]" if common else "CAST([], 'Array(Tuple(String, String))')"
    if PAGE_DIMENSION in wanted:
        page = f"if(e.event = '$pageview', [('{PAGE_DIMENSION}', e.path)], [])"
        return f"arrayConcat({pairs}, {page})" if common else page
    return pairs


def local_days(start: datetime, end: datetime, tz: str) -> list[date]:
    """The local days that lie wholly inside [start, end)."""
    zone_info = zone(tz)
    first = start.astimezone(zone_info).date()
    if datetime(first.year, first.month, first.day, tzinfo=zone_info) < start:
        first += timedelta(days=1)
    days = []
    day = first
    while True:
        nxt = day + timedelta(days=1)
        if datetime(nxt.year, nxt.month, nxt.day, tzinfo=zone_info) > end:
            break
        days.append(day)
        day = nxt
    return days


def _day_start(day: date, tz: str) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=zone(tz)).astimezone(UTC)


def version_stretches(builds: dict[date, int]) -> list[tuple[date, date, int]]:
    """(first day, last day, version) of each stretch of consecutive days built with one
    version, in day order."""
    stretches: list[tuple[date, date, int]] = []
    for d in sorted(builds):
        if (
            stretches
            and stretches[-1][2] == builds[d]
            and stretches[-1][1] + timedelta(days=1) == d
        ):
            stretches[-1] = (stretches[-1][0], d, builds[d])
        else:
            stretches.append((d, d, builds[d]))
    return stretches


def builds_of(
    params: q.Params, builds: dict[date, int], *, day: str = "r.day", version: str = "r.version"
) -> str:
    """Rows of exactly these builds ({day: version}). The day bounds let the sort key skip
    other days. Days are usually built in a few runs, each a stretch of consecutive days
    with one version: then each stretch is a day range and a version equality (cheapest per
    row); with many stretches the version is looked up by day in a hash map built once per
    statement (still cheaper per row than a (day, version) tuple IN)."""
    days = sorted(builds)
    bounds = (
        f"{day} >= {params.bind(days[0].isoformat(), 'Date')} "
        f"AND {day} <= {params.bind(days[-1].isoformat(), 'Date')}"
    )
    stretches = version_stretches(builds)
    if len(stretches) == 1:
        return f"{bounds} AND {version} = {params.bind(stretches[0][2], 'UInt64')}"
    if len(stretches) <= _MAX_STRETCHES:
        each = [
            f"({day} >= {params.bind(lo.isoformat(), 'Date')} "
            f"AND {day} <= {params.bind(hi.isoformat(), 'Date')} "
            f"AND {version} = {params.bind(v, 'UInt64')})"
            for lo, hi, v in stretches
        ]
        return f"{bounds} AND ({' OR '.join(each)})"
    keys = params.bind([d.isoformat() for d in days], "Array(Date)")
    versions = params.bind([builds[d] for d in days], "Array(UInt64)")
    return f"{bounds} AND {version} = transform({day}, {keys}, {versions}, toUInt64(0))"


def week_key(days: list[tuple[date, int]]) -> int:
    """The identity of the seven day builds a week was merged from (a 64-bit hash)."""
    text = ",".join(f"{day.isoformat()}:{version}" for day, version in days)
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")


def whole_weeks(clean: dict[date, int], split_day: date | None = None) -> dict[date, int]:
    """{Monday: key} of the weeks whose seven days are all in `clean`, none straddling
    `split_day` (the first day of the current period)."""
    weeks = {}
    for monday in clean:
        if monday.weekday() != 0:
            continue
        days = [monday + timedelta(days=i) for i in range(7)]
        if not all(d in clean for d in days):
            continue
        if split_day is not None and monday < split_day <= days[-1]:
            continue
        weeks[monday] = week_key([(d, clean[d]) for d in days])
    return weeks


# -- which days are clean ----------------------------------------------------------------------

_WRITES_BY_DAY = (
    "SELECT arrayJoin(arrayDistinct([toDate(hour, {tz:String}), "
    "toDate(hour + 3599, {tz:String})])) AS day, max(written_at) AS written "
    "FROM rollup_writes WHERE project_id = {project_id:UUID} {hours} GROUP BY day"
)
_BUILDS_BY_DAY = (
    "SELECT day, argMax(version, built_at) AS version, max(built_at) AS built "
    "FROM rollup_builds WHERE project_id = {project_id:UUID} AND tz = {tz:String} {days} "
    "GROUP BY day"
)


# Per local day of a project: when it was last written and last built, and the version of
# that build (one statement over the project's whole history: a row per written hour and per
# built day is a few thousand rows a year).
_DAY_STATES = (
    "SELECT d, max(w) AS written, max(b) AS built, argMax(v, b) AS version, "
    "argMax(f, b) AS first, argMax(l, b) AS last "
    "FROM (SELECT arrayJoin(arrayDistinct([toDate(hour, {tz:String}), "
    "toDate(hour + 3599, {tz:String})])) AS d, max(written_at) AS w, "
    "toDateTime64(0, 3, 'UTC') AS b, toUInt64(0) AS v, b AS f, b AS l "
    "FROM rollup_writes WHERE project_id = {project_id:UUID} GROUP BY d "
    "UNION ALL SELECT day AS d, toDateTime64(0, 3, 'UTC') AS w, max(built_at) AS b, "
    "argMax(version, built_at) AS v, argMax(first_ts, built_at) AS f, "
    "argMax(last_ts, built_at) AS l FROM rollup_builds "
    "WHERE project_id = {project_id:UUID} AND tz = {tz:String} GROUP BY d) "
    "GROUP BY d"
)
_EPOCH = datetime(1970, 1, 1)


@dataclass(frozen=True)
class DayStates:
    """Which local days of a project are clean (built after their last write), written, or
    never had an event."""

    written: dict[date, datetime]
    clean: dict[date, int]  # day -> the version of its latest build
    # Clean day -> its first and last event (naive UTC), as its build saw them.
    bounds: dict[date, tuple[datetime, datetime]] = field(default_factory=dict)

    def dirty_before(self, day: date) -> bool:
        """Whether a day before `day` was written after its build (or never built)."""
        return any(d < day and d not in self.clean for d in self.written)

    def empty(self, days: Iterable[date]) -> set[date]:
        return {d for d in days if d not in self.written and d not in self.clean}


def day_states(store: EventStore, scope: q.Scope, *, connection: str | None = None) -> DayStates:
    rows = store.query(
        _DAY_STATES,
        {"project_id": scope.project_id, "tz": scope.tz},
        settings=_ROLLUP_SETTINGS,
        connection=connection,
    ).rows
    written: dict[date, datetime] = {}
    clean: dict[date, int] = {}
    bounds: dict[date, tuple[datetime, datetime]] = {}
    for day, wrote, built, version, first, last in rows:
        wrote, built = _naive(wrote), _naive(built)
        if wrote > _EPOCH:
            written[day] = wrote
        if built > _EPOCH and (wrote <= _EPOCH or wrote < built):
            clean[day] = int(version)
            if _naive(first) > _EPOCH:
                bounds[day] = (_naive(first), _naive(last))
    return DayStates(written, clean, bounds)


class DayStatesCache:
    """Each project's day states, kept between reports while nothing has been written to
    the store since they were read (`EventStore.unchanged_since`: an embedded store, where
    every write, from ingest, builds, link marks or deletions, goes through this process).
    Against a server they are read for every report."""

    def __init__(self, store: EventStore) -> None:
        self.store = store
        self._lock = threading.Lock()
        self._kept: dict[tuple[str, str], tuple[int, DayStates]] = {}

    def get(self, scope: q.Scope, *, connection: str | None = None) -> DayStates:
        key = (scope.project_id, scope.tz)
        with self._lock:
            kept = self._kept.get(key)
        if kept is not None and self.store.unchanged_since(kept[0]):
            return kept[1]
        # Counted before the read: a write that finishes during it makes the next get read
        # again, whether or not this read saw it.
        mark = self.store.writes
        states = day_states(self.store, scope, connection=connection)
        with self._lock:
            self._kept[key] = (mark, states)
        return states


def clean_days(store: EventStore, scope: q.Scope, days: list[date]) -> dict[date, int]:
    """{day: rollup version} of the days in `days` whose rollup is up to date."""
    clean = day_states(store, scope).clean
    return {d: clean[d] for d in days if d in clean}


# -- person links ------------------------------------------------------------------------------


@dataclass
class _AliasState:
    marked_to: datetime | None = None
    seen: set[tuple[str, datetime]] = field(default_factory=set)
    # The store's write count when the last sync began (see `EventStore.unchanged_since`).
    synced: int | None = None


class AliasMarks:
    """Turns new person links into `rollup_writes` marks for the hours they regroup.

    A link made after a day was built changes who that day's persons are, so every hour with
    events of a newly linked distinct id is marked written. Runs before any rollup is read
    (and before each build), so a report never reads a day that a link has made stale.

    Links are found by `inserted_at` (the store's clock). `marked_to` (kept in
    `rollup_alias_marks`) says every link stored before it was handled; it trails the sync by
    at least `ALIAS_MARGIN`, so a link whose insert became visible late is still found, and
    moves on in steps of `ALIAS_MARK_STEP`; the links after it that were already handled are
    remembered here and skipped. (Another worker may mark such a link again: at worst a day
    is rebuilt once more.)
    """

    def __init__(self, store: EventStore) -> None:
        self.store = store
        self._lock = threading.Lock()
        self._state: dict[str, _AliasState] = {}

    def sync(self, project_id: str, *, connection: str | None = None) -> int:
        """Mark the hours of links not handled yet; return how many links were new."""
        with self._lock:
            state = self._state.setdefault(project_id, _AliasState())
            # No link can be new when nothing was written since the last sync began.
            if state.synced is not None and self.store.unchanged_since(state.synced):
                return 0
            synced = self.store.writes
            params: dict[str, Any] = {"project_id": project_id}
            params["local"] = _ts(state.marked_to or datetime(1970, 1, 1))
            # One statement (an aggregate without GROUP BY always answers one row): the
            # store's clock, the stored mark and the links stored since the later of both marks.
            stored_mark = (
                "(SELECT max(marked_to) FROM rollup_alias_marks "
                "WHERE project_id = {project_id:UUID})"
            )
            since = f"greatest({stored_mark}, {{local:DateTime64(3, 'UTC')}})"
            found = self.store.query(
                f"SELECT now64(3, 'UTC'), {stored_mark}, groupArray((distinct_id, inserted_at)) "
                f"FROM person_aliases WHERE project_id = {{project_id:UUID}} "
                f"AND inserted_at >= {since}",
                params,
                connection=connection,
            ).rows[0]
            now, stored = _naive(found[0]), _naive(found[1])
            marked_to = max(state.marked_to or stored, stored)
            new = [(str(r[0]), r[1]) for r in found[2] if (str(r[0]), r[1]) not in state.seen]
            if new:
                built = self.store.query(
                    "SELECT count() FROM rollup_builds WHERE project_id = {project_id:UUID}",
                    params,
                    connection=connection,
                ).scalar()
                if built and len(new) > 5000:
                    self.store.command(_MARK_ALL, params, connection=connection)
                elif built:
                    # Every hour with an event of a newly linked id: its persons regroup.
                    params["ids"] = sorted({r[0] for r in new})
                    self.store.command(
                        "INSERT INTO rollup_writes_data (project_id, hour, written_at) "
                        "SELECT project_id, toStartOfHour(timestamp) AS hour, "
                        "now64(3, 'UTC') FROM events WHERE project_id = {project_id:UUID} "
                        "AND distinct_id IN {ids:Array(String)} GROUP BY project_id, hour",
                        params,
                        connection=connection,
                    )
            horizon = now - ALIAS_MARGIN
            # The mark moves on in steps (a part per report would be written otherwise); links
            # after it that were handled are remembered in `seen` until it passes them.
            if horizon - marked_to >= ALIAS_MARK_STEP:
                self.store.command(
                    "INSERT INTO rollup_alias_marks (project_id, marked_to) "
                    "VALUES ({project_id:UUID}, {to:DateTime64(3, 'UTC')})",
                    {**params, "to": _ts(horizon)},
                    connection=connection,
                )
                marked_to = horizon
            state.marked_to = marked_to
            state.seen = {k for k in state.seen | set(new) if _naive(k[1]) >= marked_to}
            state.synced = synced
            return len(new)

    def handled(self, project_id: str, until: datetime) -> None:
        """Every link stored before `until` is reflected in the rollups (a build of every day
        with links just started after them, as after an import): later syncs skip them."""
        with self._lock:
            self.store.command(
                "INSERT INTO rollup_alias_marks (project_id, marked_to) "
                "VALUES ({project_id:UUID}, {to:DateTime64(3, 'UTC')})",
                {"project_id": project_id, "to": _ts(until)},
            )
            state = self._state.setdefault(project_id, _AliasState())
            state.marked_to = _naive(until)
            state.seen = {k for k in state.seen if _naive(k[1]) >= state.marked_to}


_MARK_ALL = (
    "INSERT INTO rollup_writes_data (project_id, hour, written_at) "
    "SELECT project_id, hour, now64(3, 'UTC') FROM rollup_writes "
    "WHERE project_id = {project_id:UUID} GROUP BY project_id, hour"
)


def mark_all_written(store: EventStore, project_id: str) -> None:
    """Every hour of a project counts as written now, so reports read raw events until the
    days are rebuilt (after its events were deleted, or too many links to mark one by one)."""
    store.command(_MARK_ALL, {"project_id": project_id})


def recover_buffers(store: EventStore, *, minutes: int = 10) -> None:
    """Re-derive what a crash may have lost from the Buffer tables the views write through.

    `rollup_writes` and `first_seen` keep a few seconds of rows in memory before they reach
    their tables; a killed process loses those. Events the server received in the last
    `minutes` (its own `received_at` clock) are marked written again and their first
    occurrences stored again, both idempotent (a later mark, a minimum).
    """
    params = {"minutes": minutes}
    recent = "received_at >= now64(3, 'UTC') - toIntervalMinute({minutes:UInt32})"
    # Only hours whose newest mark is older than their newest event (its mark was lost):
    # re-marking the others would make clean days dirty for nothing (after `sextant demo`,
    # every day it just built).
    store.command(
        "INSERT INTO rollup_writes_data (project_id, hour, written_at) "
        "SELECT e.project_id, e.hour, now64(3, 'UTC') FROM (SELECT project_id, "
        "toStartOfHour(timestamp) AS hour, max(received_at) AS received FROM events "
        f"WHERE {recent} GROUP BY project_id, hour) AS e LEFT JOIN (SELECT project_id, hour, "
        "max(written_at) AS written FROM rollup_writes GROUP BY project_id, hour) AS w "
        "ON w.project_id = e.project_id AND w.hour = e.hour WHERE w.written < e.received",
        params,
        settings=_ROLLUP_SETTINGS,
    )
    store.command(
        "INSERT INTO first_seen_data (project_id, event, is_bot, distinct_hash, first_ts) "
        "SELECT project_id, event, is_bot, cityHash64(distinct_id) AS h, min(timestamp) "
        f"FROM events WHERE {recent} GROUP BY project_id, event, is_bot, h",
        params,
    )


# -- building ----------------------------------------------------------------------------------


def _narrowing(
    params: q.Params, ranges: list[tuple[datetime, datetime]] | None, only_days: str | None
) -> list[str]:
    """Conditions that keep only the stretches no clean rollup day covers (the sort key
    prunes the rest), or only the local days being built."""
    extra = []
    if ranges is not None:
        extra.append(
            "("
            + " OR ".join(
                f"(e.timestamp >= {params.bind(_ts(lo), q.UTC64)} "
                f"AND e.timestamp < {params.bind(_ts(hi), q.UTC64)})"
                for lo, hi in ranges
            )
            + ")"
        )
    if only_days is not None:
        extra.append(f"toDate(e.timestamp, {{tz:String}}) IN {only_days}")
    return extra


def _raw_rows(
    scope: q.Scope,
    params: q.Params,
    *,
    start: datetime,
    end: datetime,
    dims: Iterable[str],
    group_bots: bool,
    ranges: list[tuple[datetime, datetime]] | None = None,
    only_days: str | None = None,
    cur_start: datetime | None = None,
    hourly: bool = False,
) -> str:
    """Raw events of [start, end) as rollup rows: day, [hour,] [cur,] [is_bot,] dim, value,
    events, persons (sketch state)."""
    extra = _narrowing(params, ranges, only_days)
    whole_days = only_days is not None
    src = q.Source(
        scope,
        params,
        None,
        [],
        persons=True,
        # A whole-day build reads millions of rows: the alias arrays map them faster.
        join_persons=not whole_days,
        start=start,
        end=end,
        extra=extra,
        include_bots=True if group_bots else None,
    )
    cols = ["toDate(e.timestamp, {tz:String}) AS day"]
    keys = ["day"]
    if hourly:
        cols.append("toStartOfHour(e.timestamp) AS hour")
        keys.append("hour")
    if cur_start is not None:
        cols.append(f"e.timestamp >= {params.bind(_ts(cur_start), q.UTC64)} AS cur")
        keys.append("cur")
    if group_bots:
        cols.append("e.is_bot AS is_bot")
        keys.append("is_bot")
    cols += [
        "d.1 AS dim",
        "d.2 AS value",
        "count() AS events",
        f"{HLL_STATE}({src.person_hash}) AS persons",
    ]
    keys += ["dim", "value"]
    return (
        f"SELECT {', '.join(cols)} FROM {src.from_} "
        f"ARRAY JOIN {dimension_pairs(dims)} AS d "
        f"WHERE {src.where} GROUP BY {', '.join(keys)}"
    )


def _mapped_raw_rows(
    scope: q.Scope,
    params: q.Params,
    *,
    start: datetime,
    end: datetime,
    group_bots: bool,
    extra: list[str],
    whole_days: bool,
    keys: list[tuple[str, str]],
    aggregates: list[tuple[str, str]],
    outer: dict[str, str] | None = None,
) -> str:
    """Raw events grouped by `keys` and distinct id first, then mapped to persons: the
    mapping looks up one row per (keys, id) instead of every event (and a JOIN on the
    events themselves would keep their filters from being applied while reading).
    Columns: keys, [is_bot,] person, aggregates (optionally wrapped by `outer[name]`)."""
    src = q.Source(
        scope,
        params,
        None,
        [],
        # A whole-day build maps millions of ids: the alias arrays map them faster.
        join_persons=not whole_days,
        start=start,
        end=end,
        extra=extra,
        include_bots=True if group_bots else None,
    )
    key_cols = [
        *keys,
        *([("is_bot", "e.is_bot")] if group_bots else []),
        ("did", "e.distinct_hash"),
    ]
    inner = src.sql(
        ", ".join(f"{expr} AS {name}" for name, expr in key_cols + aggregates),
        "GROUP BY " + ", ".join(name for name, _ in key_cols),
    )
    from_, person = src.mapped(inner)
    wrap = outer or {}
    cols = [f"i.{name} AS {name}" for name, _ in key_cols[:-1]] + [f"{person} AS person"]
    cols += [f"{wrap.get(name, '{}').format(f'i.{name}')} AS {name}" for name, _ in aggregates]
    return f"SELECT {', '.join(cols)} FROM {from_}"


def _person_day_raw_rows(
    scope: q.Scope,
    params: q.Params,
    *,
    start: datetime,
    end: datetime,
    group_bots: bool,
    ranges: list[tuple[datetime, datetime]] | None = None,
    only_days: str | None = None,
) -> str:
    """The persons active on each local day of [start, end): day, [is_bot,] person, first_ts,
    last_ts (their first and last event of the day; a person may appear once per linked
    id)."""
    return _mapped_raw_rows(
        scope,
        params,
        start=start,
        end=end,
        group_bots=group_bots,
        extra=_narrowing(params, ranges, only_days),
        whole_days=only_days is not None,
        keys=[("day", "toDate(e.timestamp, {tz:String})")],
        aggregates=[("first_ts", "min(e.timestamp)"), ("last_ts", "max(e.timestamp)")],
    )


def _person_event_raw_rows(
    scope: q.Scope,
    params: q.Params,
    *,
    start: datetime,
    end: datetime,
    group_bots: bool,
    ranges: list[tuple[datetime, datetime]] | None = None,
    only_days: str | None = None,
    events: str | None = None,
) -> str:
    """When each person did each event on each local day of [start, end): day, event,
    [is_bot,] person, times (ms since the epoch, sorted); with `events` (a bound array),
    only those events. A person may appear once per linked id."""
    extra = _narrowing(params, ranges, only_days)
    if events is not None:
        extra.append(f"e.event IN {events}")
    return _mapped_raw_rows(
        scope,
        params,
        start=start,
        end=end,
        group_bots=group_bots,
        extra=extra,
        whole_days=only_days is not None,
        keys=[("day", "toDate(e.timestamp, {tz:String})"), ("event", "e.event")],
        aggregates=[("times", f"groupArray({q.EPOCH_MS})")],
        outer={"times": "arraySort({})"},
    )


# Every `api` event is named `$api_request` (ingest/event.py).
API_COLUMNS = (
    "day, method, route, requests, errors, server_errors, duration_sum, duration_max, durations"
)


def _api_raw_rows(
    scope: q.Scope,
    params: q.Params,
    *,
    start: datetime,
    end: datetime,
    group_bots: bool,
    ranges: list[tuple[datetime, datetime]] | None = None,
    only_days: str | None = None,
) -> str:
    """Raw API requests of [start, end) as API rollup rows: day, [is_bot,] method, route,
    requests, errors, server_errors, duration_sum, duration_max, durations (sorted)."""
    src = q.Source(
        scope,
        params,
        None,
        [],
        start=start,
        end=end,
        extra=["e.event = '$api_request'", *_narrowing(params, ranges, only_days)],
        include_bots=True if group_bots else None,
    )
    keys = ["day", *(["is_bot"] if group_bots else []), "method", "route"]
    cols = [
        "toDate(e.timestamp, {tz:String}) AS day",
        *(["e.is_bot AS is_bot"] if group_bots else []),
        "e.http_method AS method",
        "e.http_route AS route",
        "count() AS requests",
        "countIf(e.http_status >= 400) AS errors",
        "countIf(e.http_status >= 500) AS server_errors",
        "sum(e.duration_ms) AS duration_sum",
        "max(e.duration_ms) AS duration_max",
        "arraySort(groupArray(e.duration_ms)) AS durations",
    ]
    return src.sql(", ".join(cols), f"GROUP BY {', '.join(keys)}")


# Person-day rows of the latest build of each day (older builds are deleted after a build,
# but a crashed one may have left rows behind).
_LATEST_PERSON_DAYS = (
    "SELECT is_bot, person, day, first_day FROM rollup_person_days "
    "WHERE project_id = {project_id:UUID} AND tz = {tz:String} AND day {cmp} {days:Array(Date)} "
    "AND (day, version) IN (SELECT day, argMax(version, built_at) FROM rollup_builds "
    "WHERE project_id = {project_id:UUID} AND tz = {tz:String} GROUP BY day)"
)
_OUTSIDE = _LATEST_PERSON_DAYS.replace("{cmp}", "NOT IN")
_STAGED = (
    "SELECT is_bot, person, day FROM rollup_person_stage WHERE project_id = {project_id:UUID} "
    "AND tz = {tz:String} AND version = {v:UInt64}"
)
# The days outside the build (`days`) with rows of a person whose first day the build moves:
# persons staged or on the old rows of the built days, who also have rows outside them.
_MOVED_DAYS = (
    "WITH moved AS (SELECT is_bot, person FROM ("
    "SELECT is_bot, person, countIf(src = 0) AS staged, minIf(day, src = 0) AS staged_min, "
    "countIf(src = 1) AS outside, minIf(day, src = 1) AS outside_min, "
    "anyIf(first_day, src >= 1) AS old_first FROM ("
    f"SELECT is_bot, person, day, toDate(0) AS first_day, 0 AS src FROM ({_STAGED}) "
    "UNION ALL SELECT is_bot, person, day, first_day, 1 AS src FROM ("
    f"{_OUTSIDE} AND person IN (SELECT person FROM ({_STAGED}) UNION ALL "
    f"SELECT person FROM ({_LATEST_PERSON_DAYS.replace('{cmp}', 'IN')}))) "
    "UNION ALL SELECT is_bot, person, day, first_day, 2 AS src FROM ("
    f"{_LATEST_PERSON_DAYS.replace('{cmp}', 'IN')})"
    ") GROUP BY is_bot, person) WHERE outside > 0 AND old_first != "
    "if(staged > 0, least(staged_min, outside_min), outside_min)) "
    f"SELECT DISTINCT day FROM ({_OUTSIDE}) AS o "
    "WHERE o.person IN (SELECT person FROM moved) AND (o.is_bot, o.person) IN moved"
)
# The staged rows with each person's first day: the earliest of their staged days and of
# their rows outside the build.
_WRITE_PERSON_DAYS = (
    "INSERT INTO rollup_person_days (project_id, tz, day, version, is_bot, person, first_day, "
    "first_ts, last_ts) SELECT {project_id:UUID}, {tz:String}, s.day, {v:UInt64}, s.is_bot, "
    "s.person, f.first, s.first_ts, s.last_ts "
    f"FROM (SELECT is_bot, person, day, first_ts, last_ts FROM rollup_person_stage "
    "WHERE project_id = {project_id:UUID} AND tz = {tz:String} AND version = {v:UInt64}) AS s "
    "INNER JOIN (SELECT is_bot, person, min(day) AS first FROM ("
    f"SELECT is_bot, person, day FROM ({_STAGED}) UNION ALL SELECT is_bot, person, day FROM ("
    f"{_OUTSIDE} AND person IN (SELECT person FROM ({_STAGED})))) GROUP BY is_bot, person) AS f "
    "ON f.is_bot = s.is_bot AND f.person = s.person"
)


@dataclass
class BuildResult:
    days: int = 0
    rows: int = 0
    seconds: float = 0.0


class RollupBuilder:
    """Builds the dirty, quiet days of a project's rollups (one pass per call)."""

    def __init__(
        self,
        store: EventStore,
        *,
        aliases: AliasMarks | None = None,
        quiet_seconds: float = 60.0,
        max_days: int = 400,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.store = store
        self.aliases = aliases or AliasMarks(store)
        self.quiet = timedelta(seconds=quiet_seconds)
        self.max_days = max_days
        self.clock = clock or (lambda: datetime.now(UTC))
        self._lock = threading.Lock()

    def due(self, scope: q.Scope, now: datetime) -> list[date]:
        """Local days with writes newer than their build and none in the last `quiet`."""
        params = {
            "project_id": scope.project_id,
            "tz": scope.tz,
            "quiet": _ts(now - self.quiet),
            "n": self.max_days,
        }
        writes = _WRITES_BY_DAY.replace("{hours}", "")
        builds = _BUILDS_BY_DAY.replace("{days}", "")
        sql = (
            f"SELECT w.day FROM ({writes}) AS w LEFT JOIN ({builds}) AS b ON b.day = w.day "
            "WHERE w.written >= b.built AND w.written < {quiet:DateTime64(3, 'UTC')} "
            "ORDER BY w.day DESC LIMIT {n:UInt32}"
        )
        rows = self.store.query(sql, params, settings=_ROLLUP_SETTINGS, connection="rollups").rows
        return sorted(row[0] for row in rows)

    def build(self, project_id: str, tz: str) -> BuildResult:
        """Rebuild every due day of one project in its time zone."""
        with self._lock:
            started = time.perf_counter()
            self.aliases.sync(project_id, connection="rollups")
            now = self.clock()
            scope = q.Scope(project_id, tz, True, True)
            days = self.due(scope, now)
            if not days:
                return BuildResult()
            version = time.time_ns() // 1000
            # With a quiet time shorter than the margin (tests, benchmarks, an idle store) the
            # margin shrinks with it, or a day written just before could never become clean.
            built_at = now - min(BUILD_MARGIN, self.quiet)
            # Person days first: a person whose first day moves (a late event, a link) makes
            # the days of their other rows due as well, so the set of days can grow here.
            days = self._stage_person_days(scope, days, version)
            params = q.Params()
            params.values["project_id"] = project_id
            params.values["tz"] = tz
            only = params.bind([d.isoformat() for d in days], "Array(Date)")
            span: dict[str, Any] = {
                "start": _day_start(days[0], tz),
                "end": _day_start(days[-1] + timedelta(days=1), tz),
                "group_bots": True,
                "only_days": only,
            }
            v = params.bind(version, "UInt64")

            def run(sql: str) -> None:
                self.store.command(
                    sql, params.values, settings=_ROLLUP_SETTINGS, connection="rollups"
                )

            # One pass over the events makes the hours; the days are merged from them.
            for table, columns, rows in (
                (
                    "rollup_hourly",
                    "day, hour, is_bot, dim, value, events, persons",
                    _raw_rows(scope, params, dims=ALL_DIMENSIONS, hourly=True, **span),
                ),
                (
                    "rollup_api_daily",
                    f"is_bot, {API_COLUMNS}",
                    _api_raw_rows(scope, params, **span),
                ),
                (
                    "rollup_person_events",
                    "day, event, is_bot, person, times",
                    _person_event_raw_rows(scope, params, **span),
                ),
            ):
                run(
                    f"INSERT INTO {table} (project_id, tz, version, {columns}) "
                    f"SELECT {{project_id:UUID}}, {{tz:String}}, {v}, {columns} FROM ({rows})"
                )
                if table == "rollup_hourly":
                    run(
                        "INSERT INTO rollup_daily (project_id, tz, day, version, is_bot, dim, "
                        f"value, events, persons) SELECT project_id, tz, day, version, is_bot, "
                        f"dim, value, sum(events), {HLL_MERGE_STATE}(persons) FROM rollup_hourly "
                        f"WHERE project_id = {{project_id:UUID}} AND tz = {{tz:String}} "
                        f"AND version = {v} AND span = 1 "
                        "GROUP BY project_id, tz, day, version, is_bot, dim, value"
                    )
                    # Blocks of six hours from the UTC hour the local day starts in.
                    first_hour = "toStartOfHour(toTimeZone(toDateTime(day, {tz:String}), 'UTC'))"
                    offset = f"toUInt32(toUnixTimestamp(hour) - toUnixTimestamp({first_hour}))"
                    block = f"{first_hour} + toIntervalHour(6 * intDiv({offset}, 21600))"
                    run(
                        "INSERT INTO rollup_hourly (project_id, tz, day, version, hour, span, "
                        "is_bot, dim, value, events, persons) SELECT project_id, tz, day, "
                        f"version, {block} AS block, 6, is_bot, dim, value, sum(events), "
                        f"{HLL_MERGE_STATE}(persons) FROM rollup_hourly "
                        f"WHERE project_id = {{project_id:UUID}} AND tz = {{tz:String}} "
                        f"AND version = {v} AND span = 1 "
                        "GROUP BY project_id, tz, day, version, block, is_bot, dim, value"
                    )
            bounds = self._day_bounds(scope, version)
            self._write_person_days(scope, days, version)
            self.store.insert(
                "rollup_builds",
                [
                    [project_id, tz, d, version, built_at, *bounds.get(d, (_EPOCH, _EPOCH))]
                    for d in days
                ],
                ["project_id", "tz", "day", "version", "built_at", "first_ts", "last_ts"],
            )
            # Older versions of these days are never read again.
            for table in ROLLUP_TABLES:
                self.store.command(
                    f"DELETE FROM {table} WHERE project_id = {{project_id:UUID}} "
                    "AND tz = {tz:String} AND day IN {days:Array(Date)} AND version < {v:UInt64}",
                    {"project_id": project_id, "tz": tz, "days": days, "v": version},
                    connection="rollups",
                )
            self._build_weeks(scope, days)
            count = self.store.query(
                "SELECT count() FROM rollup_daily WHERE project_id = {project_id:UUID} "
                "AND tz = {tz:String} AND version = {v:UInt64}",
                {"project_id": project_id, "tz": tz, "v": version},
                connection="rollups",
            ).scalar()
            result = BuildResult(len(days), int(count or 0), time.perf_counter() - started)
            log.info(
                "rollups_built",
                project_id=project_id,
                tz=tz,
                days=result.days,
                rows=result.rows,
                seconds=round(result.seconds, 3),
            )
            return result

    # -- person days and first days ---------------------------------------------------------

    def _run(self, sql: str, params: dict[str, Any]) -> Any:
        return self.store.command(sql, params, settings=_ROLLUP_SETTINGS, connection="rollups")

    def _stage_person_days(self, scope: q.Scope, days: list[date], version: int) -> list[date]:
        """Stage the person-day rows of `days` (and of every day they make due); return all
        the days to build.

        A person's first day is stored on each of their rows. Rebuilding some days can move
        it (an earlier event arrived late, a link merged an earlier id, a person vanished from
        a day): then the person's rows on the other days are stale, and those days are
        rebuilt in the same pass. Usually none are (today's new persons have no other rows).
        """
        base = {"project_id": scope.project_id, "tz": scope.tz, "v": version}
        todo, done = list(days), sorted(days)
        while todo:
            params = q.Params()
            params.values.update({"project_id": scope.project_id, "tz": scope.tz})
            only = params.bind([d.isoformat() for d in todo], "Array(Date)")
            rows = _person_day_raw_rows(
                scope,
                params,
                start=_day_start(min(todo), scope.tz),
                end=_day_start(max(todo) + timedelta(days=1), scope.tz),
                group_bots=True,
                only_days=only,
            )
            params.values["v"] = version
            self._run(
                "INSERT INTO rollup_person_stage (project_id, tz, version, day, is_bot, person, "
                "first_ts, last_ts) SELECT {project_id:UUID}, {tz:String}, {v:UInt64}, day, "
                "is_bot, person, min(first_ts), max(last_ts) "
                f"FROM ({rows}) GROUP BY day, is_bot, person",
                params.values,
            )
            moved = self.store.query(
                _MOVED_DAYS, {**base, "days": done}, settings=_ROLLUP_SETTINGS, connection="rollups"
            ).rows
            todo = sorted({row[0] for row in moved} - set(done))
            done = sorted({*done, *todo})
        return done

    def _day_bounds(self, scope: q.Scope, version: int) -> dict[date, tuple[datetime, datetime]]:
        """The first and last event of each staged day (bots included)."""
        rows = self.store.query(
            "SELECT day, min(first_ts), max(last_ts) FROM rollup_person_stage "
            "WHERE project_id = {project_id:UUID} AND tz = {tz:String} AND version = {v:UInt64} "
            "GROUP BY day",
            {"project_id": scope.project_id, "tz": scope.tz, "v": version},
            connection="rollups",
        ).rows
        return {row[0]: (_naive(row[1]), _naive(row[2])) for row in rows}

    def _write_person_days(self, scope: q.Scope, days: list[date], version: int) -> None:
        """The staged rows of this build with each person's first day, then the stage
        emptied (with what a crashed build of this project left there an hour ago)."""
        params = {"project_id": scope.project_id, "tz": scope.tz, "v": version, "days": days}
        self._run(_WRITE_PERSON_DAYS, params)
        self._run(
            "DELETE FROM rollup_person_stage WHERE project_id = {project_id:UUID} "
            "AND tz = {tz:String} AND (version = {v:UInt64} OR version < {v:UInt64} - 3600000000)",
            params,
        )

    def _build_weeks(self, scope: q.Scope, days: list[date]) -> None:
        """Merge the weeks of the rebuilt days whose seven days are now all clean."""
        mondays = sorted({d - timedelta(days=d.weekday()) for d in days})
        week_days = [m + timedelta(days=i) for m in mondays for i in range(7)]
        clean = clean_days(self.store, scope, week_days)
        weeks = whole_weeks(clean)
        if not weeks:
            return
        pairs = [
            (d.isoformat(), clean[d]) for m in weeks for d in (m + timedelta(i) for i in range(7))
        ]
        params = {
            "project_id": scope.project_id,
            "tz": scope.tz,
            "pairs": pairs,
            "mondays": list(weeks),
            "keys": list(weeks.values()),
        }
        self.store.command(
            "INSERT INTO rollup_weekly (project_id, tz, week, key, is_bot, dim, value, events, "
            "persons) SELECT {project_id:UUID}, {tz:String}, toMonday(day) AS monday, "
            "transform(monday, {mondays:Array(Date)}, {keys:Array(UInt64)}, toUInt64(0)), "
            f"is_bot, dim, value, sum(events), {HLL_MERGE_STATE}(persons) FROM rollup_daily "
            "WHERE project_id = {project_id:UUID} AND tz = {tz:String} "
            "AND (day, version) IN {pairs:Array(Tuple(Date, UInt64))} "
            "GROUP BY monday, is_bot, dim, value",
            params,
            settings=_ROLLUP_SETTINGS,
            connection="rollups",
        )
        # Merges of earlier builds of these weeks are never read again.
        self.store.command(
            "DELETE FROM rollup_weekly WHERE project_id = {project_id:UUID} AND tz = {tz:String} "
            "AND week IN {mondays:Array(Date)} AND key NOT IN {keys:Array(UInt64)}",
            params,
            connection="rollups",
        )


class RollupScheduler:
    """Builds in the background for the projects that were recently asked about."""

    def __init__(self, builder: RollupBuilder, *, interval_seconds: float = 15.0) -> None:
        self.builder = builder
        self.interval = interval_seconds
        self._wanted: dict[tuple[str, str], float] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def want(self, project_id: str, tz: str) -> None:
        """A report of this project was asked for: keep its rollups built."""
        key = (project_id, tz)
        with self._lock:
            first = key not in self._wanted
            self._wanted[key] = time.monotonic()
        if first:
            self._wake.set()

    def start(self) -> None:
        if self._thread is None:
            self._stop.clear()  # started again after a stop
            self._thread = threading.Thread(target=self._loop, name="rollups", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.interval)
            self._wake.clear()
            if self._stop.is_set():
                return
            horizon = time.monotonic() - 24 * 3600
            with self._lock:
                self._wanted = {k: v for k, v in self._wanted.items() if v > horizon}
                keys = list(self._wanted)
            for project_id, tz in keys:
                if self._stop.is_set():
                    return
                try:
                    self.builder.build(project_id, tz)
                except EventStoreError as exc:
                    log.warning("rollups_build_failed", project_id=project_id, error=str(exc))
                except Exception as exc:  # the loop must outlive a bug in one build
                    log.exception("rollups_build_crashed", project_id=project_id, error=repr(exc))


# -- reading -----------------------------------------------------------------------------------


@dataclass
class Plan:
    """Where a report's rows come from: rollup days, and raw events for the rest."""

    scope: q.Scope
    start: datetime
    end: datetime
    clean: dict[date, int]
    split_day: date | None = None  # the first local day of the current period
    # Clean days the range starts or ends inside: their whole hours in the range can come
    # from `rollup_hourly`.
    edges: dict[date, int] = field(default_factory=dict)
    # The project's day states the plan was made from (None: not known).
    states: DayStates | None = None
    split: datetime | None = None  # where the current period starts

    def hours(self) -> list[tuple[datetime, date, int]]:
        """(hour, local day, version) of the hours of clean edge days that lie wholly inside
        both the range and their day (a half-hour zone's day starts inside a UTC hour)."""
        out = []
        for day, version in sorted(self.edges.items()):
            lo = max(self.start, _day_start(day, self.scope.tz))
            hi = min(self.end, _day_start(day + timedelta(days=1), self.scope.tz))
            hour = lo.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
            if hour < lo:
                hour += timedelta(hours=1)
            while hour + timedelta(hours=1) <= hi:
                out.append((hour, day, version))
                hour += timedelta(hours=1)
        return out

    def hour_pieces(
        self,
    ) -> tuple[list[tuple[datetime, date, int]], list[tuple[datetime, date, int]]]:
        """`hours()` as (single hours, six-hour blocks): a block of the hourly rollup is
        used where all its hours are wanted and it lies on one side of the split."""
        wanted = self.hours()
        by_day: dict[date, set[datetime]] = {}
        for hour, day, _ in wanted:
            by_day.setdefault(day, set()).add(hour)
        versions = {day: version for _, day, version in wanted}
        blocks = []
        for day, hours in by_day.items():
            start = _day_start(day, self.scope.tz)
            end = _day_start(day + timedelta(days=1), self.scope.tz)
            first = start.replace(minute=0, second=0, microsecond=0)
            block = first
            while block < end:
                members = [
                    h
                    for h in (block + timedelta(hours=i) for i in range(6))
                    if h < end and h + timedelta(hours=1) > start
                ]
                straddles = self.split is not None and block < self.split < block + timedelta(
                    hours=6
                )
                if members and set(members) <= hours and not straddles:
                    blocks.append((block, day, versions[day]))
                    hours -= set(members)
                block += timedelta(hours=6)
        singles = [piece for piece in wanted if piece[0] in by_day[piece[1]]]
        return singles, blocks

    def raw_ranges(self, *, hours: bool = False) -> list[tuple[datetime, datetime]]:
        """The stretches of [start, end) that no clean rollup day (and with `hours`, no
        rollup hour) covers, in order."""
        covered = [
            (_day_start(day, self.scope.tz), _day_start(day + timedelta(days=1), self.scope.tz))
            for day in self.clean
        ]
        if hours:
            covered += [(h, h + timedelta(hours=1)) for h, _, _ in self.hours()]
        out: list[tuple[datetime, datetime]] = []
        cursor = self.start
        for lo, hi in sorted(covered):
            if lo > cursor:
                out.append((cursor, lo))
            cursor = max(cursor, hi)
        if cursor < self.end:
            out.append((cursor, self.end))
        return out

    def rows(
        self,
        params: q.Params,
        dims: Iterable[str],
        *,
        cur_start: datetime | None = None,
        weeks: bool = False,
    ) -> str:
        """One subquery of (day, cur, dim, value, events, persons) rows over [start, end).
        With `weeks` (for readers that need no finer day than the week), whole clean weeks
        come from `rollup_weekly` as one row per value dated on their Monday."""
        dims = list(dims)
        params.values.setdefault("project_id", self.scope.project_id)
        params.values.setdefault("tz", self.scope.tz)
        parts = []
        whole = whole_weeks(self.clean, self.split_day) if weeks else {}
        covered = {m + timedelta(days=i) for m in whole for i in range(7)}
        daily = {d: v for d, v in self.clean.items() if d not in covered}
        dim_list = params.bind(dims, "Array(String)")
        first = None
        if cur_start is not None:
            first = params.bind(
                cur_start.astimezone(zone(self.scope.tz)).date().isoformat(), "Date"
            )
        bots = "" if self.scope.include_bots else "AND r.is_bot = 0 "
        for table, column, wanted in (
            ("rollup_weekly", "week", whole),
            ("rollup_daily", "day", daily),
        ):
            if not wanted:
                continue
            version = "key" if table == "rollup_weekly" else "version"
            builds = builds_of(params, wanted, day=f"r.{column}", version=f"r.{version}")
            cur = "1" if first is None else f"r.{column} >= {first}"
            parts.append(
                f"SELECT r.{column} AS day, toUInt8({cur}) AS cur, r.dim AS dim, "
                f"r.value AS value, r.events AS events, r.persons AS persons FROM {table} AS r "
                "WHERE r.project_id = {project_id:UUID} AND r.tz = {tz:String} "
                f"AND r.dim IN {dim_list} AND {builds} {bots}"
            )
        hours = self.hours()
        if hours:
            cur = "1"
            if cur_start is not None:
                cur = f"r.hour >= {params.bind(_ts(cur_start), q.UTC64)}"
            builds = builds_of(params, {d: v for _, d, v in hours})
            singles, blocks = self.hour_pieces()
            spans = []
            for span, pieces in ((1, singles), (6, blocks)):
                if pieces:
                    at = params.bind([_ts(h)[:19] for h, _, _ in pieces], "Array(DateTime('UTC'))")
                    spans.append(f"(r.span = {span} AND r.hour IN {at})")
            parts.append(
                f"SELECT r.day AS day, toUInt8({cur}) AS cur, r.dim AS dim, r.value AS value, "
                "r.events AS events, r.persons AS persons FROM rollup_hourly AS r "
                "WHERE r.project_id = {project_id:UUID} AND r.tz = {tz:String} "
                f"AND r.dim IN {dim_list} AND {builds} AND ({' OR '.join(spans)}) {bots}"
            )
        ranges = self.raw_ranges(hours=True)
        if not ranges:
            return "(" + " UNION ALL ".join(parts) + ")"
        raw = _raw_rows(
            self.scope,
            params,
            start=ranges[0][0],
            end=ranges[-1][1],
            dims=dims,
            group_bots=False,
            ranges=ranges if (self.clean or hours) else None,
            cur_start=cur_start,
        )
        cur = "1" if cur_start is None else "cur"
        parts.append(f"SELECT day, toUInt8({cur}) AS cur, dim, value, events, persons FROM ({raw})")
        return "(" + " UNION ALL ".join(parts) + ")"

    def person_edges(self) -> dict[date, int]:
        """Clean days the range starts or ends inside (not both): their persons in the range
        are the person-day rows active after the start (or before the end)."""
        tz = self.scope.tz
        out = {}
        for day, version in self.edges.items():
            cut_start = self.start > _day_start(day, tz)
            cut_end = self.end < _day_start(day + timedelta(days=1), tz)
            if cut_start != cut_end:
                out[day] = version
        return out

    def person_raw_ranges(self) -> list[tuple[datetime, datetime]]:
        """The stretches of [start, end) that person-day rows do not cover."""
        edges = self.person_edges()
        return Plan(self.scope, self.start, self.end, {**self.clean, **edges}).raw_ranges()

    def _person_rows(self, params: q.Params, columns: str) -> str | None:
        """The clean person-day rows of the range (whole days, and edge days by their first
        and last event), or None without any."""
        edges = self.person_edges()
        if not self.clean and not edges:
            return None
        bots = "" if self.scope.include_bots else "AND r.is_bot = 0"
        tenant = "r.project_id = {project_id:UUID} AND r.tz = {tz:String}"
        parts = []
        if self.clean:
            parts.append(
                f"SELECT {columns} FROM rollup_person_days AS r WHERE {tenant} "
                f"AND {builds_of(params, self.clean)} {bots}"
            )
        if edges:
            parts.append(
                f"SELECT {columns} FROM rollup_person_days AS r WHERE {tenant} "
                f"AND {builds_of(params, edges)} {bots} "
                f"AND r.first_ts < {params.bind(_ts(self.end), q.UTC64)} "
                f"AND r.last_ts >= {params.bind(_ts(self.start), q.UTC64)}"
            )
        return " UNION ALL ".join(parts)

    def _person_raw(self, params: q.Params) -> str | None:
        ranges = self.person_raw_ranges()
        if not ranges:
            return None
        covered = bool(self.clean or self.person_edges())
        return _person_day_raw_rows(
            self.scope,
            params,
            start=ranges[0][0],
            end=ranges[-1][1],
            group_bots=False,
            ranges=ranges if covered else None,
        )

    def person_days(self, params: q.Params) -> str:
        """One subquery of (day, person) rows: who was active on each local day of [start,
        end), persons mapped; a person may appear twice on a day (bots and not, or both
        halves), so readers count distinct."""
        params.values.setdefault("project_id", self.scope.project_id)
        params.values.setdefault("tz", self.scope.tz)
        parts = []
        rows = self._person_rows(params, "r.day AS day, r.person AS person")
        if rows is not None:
            parts.append(rows)
        raw = self._person_raw(params)
        if raw is not None:
            parts.append(f"SELECT day, person FROM ({raw})")
        return "(" + " UNION ALL ".join(parts) + ")"

    def first_days_usable(self, store: EventStore) -> bool:
        """Whether the first days on person-day rows are right for this range: it starts at
        a local midnight, bots are left out, the days it reads raw all come after the clean
        ones, and no day before those is dirty (a late event or link there would move first
        days that the clean rows still carry)."""
        if self.scope.include_bots:
            return False
        tz = self.scope.tz
        if self.start != _day_start(self.start.astimezone(zone(tz)).date(), tz):
            return False
        states = self.states or day_states(store, self.scope)
        covered = {**self.clean, **self.person_edges()}
        days = local_days(self.start, self.end, tz) + list(self.edges)
        nothing = dict.fromkeys(states.empty(days), 0)
        ranges = Plan(self.scope, self.start, self.end, {**covered, **nothing}).raw_ranges()
        first_raw = ranges[0][0] if ranges else self.end
        if any(_day_start(day, tz) >= first_raw for day in covered):
            return False
        return not states.dirty_before(first_raw.astimezone(zone(tz)).date())

    def person_first_days(self, params: q.Params) -> str:
        """(day, person, first_day) rows of the range without bots (see
        `first_days_usable`); a person appears once a day. Raw persons get the earlier of
        their first raw day and the first day their rows carry."""
        params.values.setdefault("project_id", self.scope.project_id)
        params.values.setdefault("tz", self.scope.tz)
        parts = []
        rows = self._person_rows(params, "r.day AS day, r.person AS person, r.first_day AS first")
        if rows is not None:
            parts.append(rows)
        raw = self._person_raw(params)
        if raw is not None:
            stored = (
                "SELECT person, min(first_day) AS first FROM rollup_person_days "
                "WHERE project_id = {project_id:UUID} AND tz = {tz:String} AND is_bot = 0 "
                "AND (day, version) IN (SELECT day, argMax(version, built_at) FROM rollup_builds "
                "WHERE project_id = {project_id:UUID} AND tz = {tz:String} GROUP BY day) "
                f"AND person IN (SELECT person FROM ({raw})) GROUP BY person"
            )
            parts.append(
                "SELECT x.day AS day, x.person AS person, "
                "if(f.first != toDate(0) AND f.first < x.raw_first, f.first, x.raw_first) AS first "
                "FROM (SELECT person, raw_first, day FROM (SELECT person, min(day) AS raw_first, "
                f"groupUniqArray(day) AS days FROM ({raw}) GROUP BY person) "
                "ARRAY JOIN days AS day) AS x "
                f"LEFT JOIN ({stored}) AS f ON f.person = x.person"
            )
        return "(" + " UNION ALL ".join(parts) + ")"

    def person_events(self, params: q.Params, events: list[str]) -> str:
        """One subquery of (event, person, times) rows: when each person did each of `events`
        on each local day of [start, end), persons mapped, times in the range only; a
        person may have several rows per event and day (bots and not, linked ids, both
        halves)."""
        return "(" + " UNION ALL ".join(self._person_event_parts(params, events, True)) + ")"

    def person_events_rest(self, params: q.Params, events: list[str]) -> str | None:
        """`person_events` without the clean whole days: the rows of edge days and raw
        events, or None when the clean days cover the range."""
        parts = self._person_event_parts(params, events, False)
        return "(" + " UNION ALL ".join(parts) + ")" if parts else None

    def _person_event_parts(
        self, params: q.Params, events: list[str], whole_days: bool
    ) -> list[str]:
        params.values.setdefault("project_id", self.scope.project_id)
        params.values.setdefault("tz", self.scope.tz)
        names = params.bind(events, "Array(String)")
        bots = "" if self.scope.include_bots else "AND r.is_bot = 0"
        tenant = "r.project_id = {project_id:UUID} AND r.tz = {tz:String}"
        parts = []
        if self.clean and whole_days:
            parts.append(
                "SELECT r.event AS event, r.person AS person, r.times AS times "
                f"FROM rollup_person_events AS r WHERE {tenant} AND r.event IN {names} "
                f"AND {builds_of(params, self.clean)} {bots}"
            )
        edges = self.person_edges()
        if edges:
            lo = params.bind(_ts(self.start), q.UTC64)
            hi = params.bind(_ts(self.end), q.UTC64)
            inside = (
                f"arrayFilter(t -> t >= toUInt64(toUnixTimestamp64Milli({lo})) "
                f"AND t < toUInt64(toUnixTimestamp64Milli({hi})), r.times)"
            )
            parts.append(
                f"SELECT r.event AS event, r.person AS person, {inside} AS times "
                f"FROM rollup_person_events AS r WHERE {tenant} AND r.event IN {names} "
                f"AND {builds_of(params, edges)} {bots} AND notEmpty(times)"
            )
        ranges = self.person_raw_ranges()
        if ranges:
            raw = _person_event_raw_rows(
                self.scope,
                params,
                start=ranges[0][0],
                end=ranges[-1][1],
                group_bots=False,
                ranges=ranges if (self.clean or edges) else None,
                events=names,
            )
            parts.append(f"SELECT event, person, times FROM ({raw})")
        return parts

    def api_rows(self, params: q.Params) -> str:
        """One subquery of API rollup rows (`API_COLUMNS`) over [start, end)."""
        params.values.setdefault("project_id", self.scope.project_id)
        params.values.setdefault("tz", self.scope.tz)
        parts = []
        if self.clean:
            bots = "" if self.scope.include_bots else "AND r.is_bot = 0"
            parts.append(
                f"SELECT {API_COLUMNS} FROM rollup_api_daily AS r "
                "WHERE r.project_id = {project_id:UUID} AND r.tz = {tz:String} "
                f"AND {builds_of(params, self.clean)} {bots}"
            )
        ranges = self.raw_ranges()
        if ranges:
            raw = _api_raw_rows(
                self.scope,
                params,
                start=ranges[0][0],
                end=ranges[-1][1],
                group_bots=False,
                ranges=ranges if self.clean else None,
            )
            parts.append(f"SELECT {API_COLUMNS} FROM ({raw})")
        return "(" + " UNION ALL ".join(parts) + ")"


def plan(
    store: EventStore,
    scope: q.Scope,
    start: datetime,
    end: datetime,
    *,
    split: datetime | None = None,
    states: DayStates | None = None,
) -> Plan:
    """Rollup days for [start, end); with `split` (where the current period starts), no
    rollup day straddles it, so every rollup row belongs wholly to one period."""
    split_day = None
    if split is not None and start < split < end:
        days = local_days(start, split, scope.tz) + local_days(split, end, scope.tz)
        split_day = split.astimezone(zone(scope.tz)).date()
    else:
        days = local_days(start, end, scope.tz)
    # The days the range starts or ends inside (not whole, so not in `days`).
    local = zone(scope.tz)
    edges = {
        start.astimezone(local).date(),
        (end - timedelta(microseconds=1)).astimezone(local).date(),
    }
    edges -= set(days)
    states = states or day_states(store, scope)
    # A clean edge day whose events all lie inside the range (and on one side of the split)
    # is read whole: typically today, built after its last event, up to now.
    for day in sorted(edges):
        found = states.bounds.get(day)
        if day not in states.clean or found is None:
            continue
        first, last = (moment.replace(tzinfo=UTC) for moment in found)
        if first < start or last >= end:
            continue
        if split is not None and split_day is not None and first < split <= last:
            continue
        days.append(day)
        edges.discard(day)
    return Plan(
        scope,
        start,
        end,
        {d: states.clean[d] for d in days if d in states.clean},
        split_day,
        {d: states.clean[d] for d in edges if d in states.clean},
        states,
        split if split_day is not None else None,
    )


def compile_summary(p: Plan, rng: TimeRange) -> q.Compiled:
    params = q.Params()
    rows = p.rows(params, ["", *SUMMARY_DIMENSIONS.values()], cur_start=rng.start, weeks=True)
    sql = (
        f"SELECT cur, dim, value, sum(events) AS events, {HLL_MERGE}(persons) AS persons "
        f"FROM {rows} GROUP BY cur, dim, value"
    )
    return q.Compiled({"summary": sql}, params.values, dict(_ROLLUP_SETTINGS))


def _bucket(interval: str) -> str:
    return {
        "day": "toString(day)",
        "week": "toString(toMonday(day))",
        "month": "toString(toStartOfMonth(day))",
    }[interval]


def compile_trends(p: Plan, interval: str, events: list[str | None]) -> q.Compiled:
    """Per bucket and overall: events and persons of all events ('', '') and of each named
    event ('event', name)."""
    params = q.Params()
    names = sorted({e for e in events if e is not None})
    dims = ([""] if None in events else []) + (["event"] if names else [])
    rows = p.rows(params, dims, weeks=interval == "week")
    wanted = ""
    if names:
        wanted = f"WHERE dim = '' OR value IN {params.bind(names, 'Array(String)')}"
    sql = (
        f"SELECT {_bucket(interval)} AS bucket, dim, value, sum(events) AS events, "
        f"{HLL_MERGE}(persons) AS persons FROM {rows} {wanted} "
        "GROUP BY GROUPING SETS ((bucket, dim, value), (dim, value))"
    )
    return q.Compiled({"trends": sql}, params.values, dict(_ROLLUP_SETTINGS))


def compile_breakdown(p: Plan, rng: TimeRange, dim: str, limit: int) -> q.Compiled:
    """Events and persons of the top `limit` values of this period, the rest as "$other",
    for both periods, in one statement (persons of the rest are merged, not added)."""
    params = q.Params()
    rows = p.rows(params, [dim], cur_start=rng.start, weeks=True)
    per_value = (
        f"SELECT cur, value, sum(events) AS events, {HLL_MERGE_STATE}(persons) AS s "
        f"FROM {rows} GROUP BY cur, value"
    )
    top = (
        "arraySlice(arrayMap(y -> y.2, arraySort(y -> (-toInt64(y.3), y.2), "
        f"arrayFilter(y -> y.1 = 1, a))), 1, {params.bind(limit, 'UInt32')})"
    )
    sql = (
        f"SELECT x.1 AS cur, if(has(top, x.2), x.2, '{q.OTHER}') AS breakdown, "
        f"sum(x.3) AS events, {HLL_MERGE}(x.4) AS persons FROM "
        f"(SELECT groupArray((cur, value, events, s)) AS a, {top} AS top FROM ({per_value})) "
        "ARRAY JOIN a AS x GROUP BY cur, breakdown"
    )
    return q.Compiled({"breakdown": sql}, params.values, dict(_ROLLUP_SETTINGS))


def compile_active_users(p: Plan, days: list[str]) -> q.Compiled:
    """DAU, WAU and MAU of each of `days`: day sketches merged over 1, 7 and 30 days.

    Each day's sketch joins every window it falls in and the windows are merged by one
    aggregation (merging in place: array functions over sketches copy them, which cost
    more than the merges)."""
    params = q.Params()
    rows = p.rows(params, [""])
    per_day = f"SELECT day, {HLL_MERGE_STATE}(persons) AS s FROM {rows} GROUP BY day"
    windows = params.bind(
        [(day, width) for day in days for width in (1, 7, 30)], "Array(Tuple(Date, UInt8))"
    )
    per_window = (
        f"SELECT t.1 AS x, t.2 AS width, {HLL_MERGE}(s) AS persons FROM ({per_day}) "
        f"ARRAY JOIN arrayFilter(t -> t.1 >= day AND t.1 < day + t.2, {windows}) AS t "
        "GROUP BY x, width"
    )
    sql = (
        "SELECT toString(x) AS day, sumIf(persons, width = 1) AS dau, "
        "sumIf(persons, width = 7) AS wau, sumIf(persons, width = 30) AS mau "
        f"FROM ({per_window}) GROUP BY x"
    )
    return q.Compiled({"active": sql}, params.values, dict(_ROLLUP_SETTINGS))


API_METRICS = (
    "sum(requests) AS request_count, sum(errors) AS error_count, "
    "sum(server_errors) AS server_error_count, sum(duration_sum) / sum(requests) AS avg, "
    "quantilesExactInclusiveArray(0.5, 0.95, 0.99)(durations) AS q, max(duration_max) AS max"
)


def compile_api_metrics(p: Plan, interval: str, sort: str) -> q.Compiled:
    """The API report over API rollup rows: the same counts and the same exact percentiles
    as `queries.compile_api_metrics`, from one array of latencies per endpoint-day.

    One statement reads the rows once for all three parts; `part` says which a row is:
    0 the summary, 1 an endpoint (in the order asked for), 2 a bucket of the series.
    """
    params = q.Params()
    rows = p.api_rows(params)
    sql = (
        f"SELECT 3 - grouping(bucket, method) AS part, method, route, bucket, {API_METRICS} "
        f"FROM (SELECT *, {_bucket(interval)} AS bucket FROM {rows}) "
        "GROUP BY GROUPING SETS ((), (method, route), (bucket)) "
        f"ORDER BY part, {q.API_SORT[sort]}"
    )
    return q.Compiled({"api": sql}, params.values, dict(_ROLLUP_SETTINGS))


def retention_applies(query: RetentionQuery) -> bool:
    """Whether `compile_retention` answers this retention report (cohorts by the first event
    of all, coming back with any event, no filters); see also `Plan.first_days_usable`."""
    return not query.filters and query.start_event is None and query.return_event is None


def compile_retention(p: Plan, rng: TimeRange, query: RetentionQuery) -> q.Compiled:
    """`queries.compile_retention` from person-day rows that carry each person's first day:
    only the rows of the range are read, no first occurrence is looked up.

    By day every figure counts rows (a person has one row a day); by week or month the rows
    are grouped per person first (a person active on two days of a week counts once)."""
    params = q.Params()
    rows = p.person_first_days(params)
    first = params.bind(rng.start.astimezone(rng.zone).date().isoformat(), "Date")
    last_day = params.bind(
        (rng.end - timedelta(milliseconds=1)).astimezone(rng.zone).date().isoformat(), "Date"
    )
    periods = int(query.periods)
    if query.interval == "day":
        # One row per person a day: count the (first day, day) cells, then read each figure
        # off the few hundred cells.
        cells = (
            f"SELECT first, day, count() AS n FROM {rows} WHERE first >= {first} "
            "GROUP BY first, day"
        )
        eligible = [
            f"sumIf(n, day = first AND first + {k} <= {last_day}) AS e{k}" for k in (1, 7, 30)
        ]
        came_back = [f"sumIf(n, day = first + {k}) AS r{k}" for k in (1, 7, 30)]
        returned = ", ".join(f"sumIf(n, day = first + {k})" for k in range(1, periods + 1))
        sql = (
            f"SELECT toString(first) AS cohort, sumIf(n, day = first) AS persons, "
            f"{', '.join(eligible + came_back)}, [{returned}] AS returned "
            f"FROM ({cells}) GROUP BY first ORDER BY first"
        )
    else:
        per_person = (
            "SELECT any(first) AS fd, groupUniqArray(day) AS days "
            f"FROM {rows} WHERE first >= {first} GROUP BY person"
        )
        sql = q.retention_cohorts(per_person, query.interval, periods, last_day)
    return q.Compiled({"cohorts": sql}, params.values, dict(_ROLLUP_SETTINGS))


def funnel_applies(query: FunnelQuery) -> bool:
    """Whether `compile_funnel` answers this funnel: steps in order (other events between
    them allowed), each one event by name without filters, the first step's event used by no
    other step, no filters and no breakdown."""
    first = query.steps[0].event
    return (
        query.order == "ordered"
        and query.breakdown is None
        and not query.filters
        and all(step.event is not None and not step.filters for step in query.steps)
        and first not in {step.event for step in query.steps[1:]}
    )


def compile_funnel(p: Plan, query: FunnelQuery) -> q.Compiled:
    """`queries.compile_funnel` (ordered steps) from person-event rows.

    Everyone who did step 1 counts for step 1 (`first_step`: the distinct persons of its
    rows). Only the persons who did step 2 can go further, so only theirs get a timeline
    (`funnel`): the level from windowFunnel over their step events, and the time-to-convert
    chain from their first step-1 event through the later steps' events.
    """
    params = q.Params()
    steps = [str(step.event) for step in query.steps]
    window = params.bind(query.window_seconds * 1000, "UInt64")
    first = params.bind(steps[0], "String")
    # The step mask of each later event (an event may be several later steps).
    masks: dict[str, int] = {}
    for k, name in enumerate(steps[1:], start=1):
        masks[name] = masks.get(name, 0) | (1 << k)
    mask = (
        "multiIf("
        + ", ".join(
            f"event = {params.bind(name, 'String')}, {bits}" for name, bits in masks.items()
        )
        + ", 0)"
    )
    conds = ", ".join(f"event = {params.bind(name, 'String')}" for name in steps)
    rows = p.person_events(params, sorted(set(steps)))
    candidates = f"SELECT person FROM {p.person_events(params, [steps[1]])}"
    timelines = (
        f"SELECT person, windowFunnel({window})(t, {conds}) AS level, "
        f"minIf(t, event = {first}) AS t0, "
        f"groupArrayIf((t, toUInt64({mask})), event != {first}) AS later "
        f"FROM (SELECT * FROM {rows} WHERE person IN ({candidates})) ARRAY JOIN times AS t "
        "GROUP BY person"
    )
    per_person = (
        "SELECT '' AS breakdown, level, arraySort(arrayConcat([(t0, toUInt64(1))], "
        f"arrayFilter(y -> y.1 >= t0 AND y.1 <= t0 + {window}, later))) AS evs "
        f"FROM ({timelines})"
    )
    step_one = p.person_events(params, [steps[0]])
    return q.Compiled(
        {
            "funnel": q.funnel_steps(per_person, len(steps), window),
            "first_step": f"SELECT uniqExact(person) AS s1 FROM {step_one}",
        },
        params.values,
        dict(_ROLLUP_SETTINGS),
    )
