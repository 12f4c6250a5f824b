"""Run compiled queries, shape their results, and cache them per (project, query)."""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import json
import math
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import orjson
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from sextant.analytics import queries as q
from sextant.analytics import rollups
from sextant.analytics.funnels import FunnelIndex
from sextant.analytics.schemas import (
    BIGINT_COLUMNS,
    ActiveUsersQuery,
    ApiMetricsQuery,
    BreakdownStatsQuery,
    EventsQuery,
    FunnelQuery,
    Interval,
    PathsQuery,
    PersonQuery,
    RealtimeQuery,
    RetentionQuery,
    Series,
    SessionsQuery,
    SummaryQuery,
    TrendsQuery,
    Web3Query,
)
from sextant.analytics.timerange import TimeRange, resolve, zone
from sextant.core.cache import Cache
from sextant.core.errors import BadRequest, NotFound
from sextant.core.eventstore import EventStore, EventStoreError, QueryTooExpensive
from sextant.projects.context import ProjectContext

Clock = Callable[[], datetime]


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _num(value: Any) -> Any:
    """JSON-safe numbers: NaN/inf become null, big integers become decimal strings."""
    if isinstance(value, float):
        return None if math.isnan(value) or math.isinf(value) else value
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 2**53:
        return str(value)
    return value


# The API report's row of a stretch without requests.
_NO_REQUESTS: dict[str, Any] = {
    "request_count": 0,
    "error_count": 0,
    "server_error_count": 0,
    "avg": None,
    "q": [],
    "max": None,
}


def _ms(value: Any) -> float | None:
    """A latency in ms to the microsecond (what a sum in another order changes is below)."""
    number = _num(value)
    return None if number is None else round(float(number), 3)


def _to_number(value: Any) -> float | int | None:
    if value is None:
        return None
    if isinstance(value, str):
        if value == "":
            return None
        return int(value)
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int | float):
        return value
    return None


def change(current: Any, previous: Any) -> dict[str, Any]:
    """A value with the previous one and the change in percent (no division by zero)."""
    cur, prev = _to_number(current), _to_number(previous)
    result: dict[str, Any] = {"value": current, "previous": previous, "change_pct": None}
    if cur is None or prev is None:
        result["change"] = "unknown"
    elif prev == 0:
        result["change"] = "none" if cur == 0 else "new"
    else:
        pct = (cur - prev) * 100.0 / abs(prev)
        result["change_pct"] = round(pct, 2)
        result["change"] = "up" if pct > 0 else ("down" if pct < 0 else "flat")
    return result


def _iso(moment: Any, tz: str | None = None) -> Any:
    if not isinstance(moment, datetime):
        return moment
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    if tz is not None:
        moment = moment.astimezone(zone(tz))
    return moment.isoformat(timespec="milliseconds")


def event_row(row: dict[str, Any], tz: str) -> dict[str, Any]:
    """One stored event as JSON: ISO times in the project's zone, parsed properties."""
    out: dict[str, Any] = {}
    for key, value in row.items():
        if key in ("timestamp", "received_at"):
            out[key] = _iso(value, tz)
        elif key == "properties":
            try:
                out[key] = orjson.loads(value) if value else {}
            except orjson.JSONDecodeError:
                out[key] = value
        elif isinstance(value, uuid.UUID):
            out[key] = str(value)
        else:
            out[key] = _num(value)
    return out


def encode_cursor(timestamp: datetime, event_id: str) -> str:
    if timestamp.tzinfo is None:
        timestamp = timestamp.replace(tzinfo=UTC)
    millis = int(timestamp.timestamp() * 1000)
    raw = f"{millis}|{event_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        millis, event_id = raw.split("|", 1)
        moment = datetime.fromtimestamp(int(millis) / 1000, UTC)
        return moment, str(uuid.UUID(event_id))
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise BadRequest("cursor: not a cursor returned by this endpoint") from None


@contextlib.contextmanager
def _store_errors() -> Iterator[None]:
    """A statement the store refused answers 400 (too expensive, or failed), never 500."""
    try:
        yield
    except QueryTooExpensive as exc:
        raise BadRequest(
            f"query too expensive: {exc}; narrow the date range or add filters",
            code="query_too_expensive",
        ) from exc
    except EventStoreError as exc:
        raise BadRequest(f"query failed: {exc}", code="query_failed") from exc


class AnalyticsService:
    """The query side: compile, execute in a worker thread, shape, cache."""

    def __init__(
        self,
        *,
        store: EventStore,
        cache: Cache,
        ttl_seconds: float,
        clock: Clock = _utcnow,
        limits: dict[str, Any] | None = None,
        use_rollups: bool = True,
        scheduler: rollups.RollupScheduler | None = None,
        funnel_memory_bytes: int = 512 * 1024 * 1024,
    ) -> None:
        self.store = store
        self.cache = cache
        self.ttl_seconds = ttl_seconds
        self.clock = clock
        # Time and memory limits of every statement (a runaway query answers 400).
        self.limits = dict(limits or {})
        self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="analytics")
        # Daily rollups for the common unfiltered reports (see analytics/rollups.py).
        self.use_rollups = use_rollups
        self.scheduler = scheduler
        self.aliases = scheduler.builder.aliases if scheduler else rollups.AliasMarks(store)
        self._linked: set[str] = set()  # projects known to have person links
        self._states = rollups.DayStatesCache(store)
        # Funnels of named steps from the person-event rows of built days, held in memory.
        self.funnels = (
            FunnelIndex(store, max_bytes=funnel_memory_bytes, settings=self.limits)
            if funnel_memory_bytes
            else None
        )

    # -- entry points ------------------------------------------------------------------------

    @staticmethod
    def cache_key(ctx: ProjectContext, query: BaseModel) -> str:
        document = {"tz": ctx.timezone, "q": query.model_dump(mode="json")}
        try:
            body = orjson.dumps(document, option=orjson.OPT_SORT_KEYS)
        except TypeError:  # an integer beyond 64 bits (a wei amount in a filter)
            body = json.dumps(document, sort_keys=True, separators=(",", ":")).encode()
        digest = hashlib.sha256(body).hexdigest()
        return f"q:{ctx.project_id}:{digest}"

    async def run(
        self, ctx: ProjectContext, query: BaseModel, *, fresh: bool = False
    ) -> dict[str, Any]:
        """Answer a query from the cache when allowed, else from the store."""
        key = self.cache_key(ctx, query)
        if not fresh and self.ttl_seconds > 0:
            hit = await run_in_threadpool(self.cache.get, key)
            if hit is not None:
                result: dict[str, Any] = orjson.loads(hit)
                result["cached"] = True
                return result
        result = await run_in_threadpool(self.execute, ctx, query)
        if self.ttl_seconds > 0:
            payload = orjson.dumps(result, default=str)
            await run_in_threadpool(self.cache.set, key, payload, self.ttl_seconds)
        return result

    def execute(self, ctx: ProjectContext, query: BaseModel) -> dict[str, Any]:
        """Compile and run one query now (no cache)."""
        zone(ctx.timezone)
        handlers: dict[type[BaseModel], Callable[[ProjectContext, Any], dict[str, Any]]] = {
            TrendsQuery: self._trends,
            FunnelQuery: self._funnel,
            RetentionQuery: self._retention,
            ActiveUsersQuery: self._active_users,
            PathsQuery: self._paths,
            PersonQuery: self._person,
            EventsQuery: self._events,
            ApiMetricsQuery: self._api_metrics,
            Web3Query: self._web3,
            SummaryQuery: self._summary,
            SessionsQuery: self._sessions,
            BreakdownStatsQuery: self._breakdown,
            RealtimeQuery: self._realtime,
        }
        handler = handlers.get(type(query))
        if handler is None:
            raise BadRequest(f"kind: unsupported query kind {getattr(query, 'kind', '?')!r}")
        body = handler(ctx, query)
        body["cached"] = False
        body["generated_at"] = _iso(self.clock(), ctx.timezone)
        body.setdefault("kind", getattr(query, "kind", ""))
        return body

    # -- plumbing ----------------------------------------------------------------------------

    def _run(
        self, compiled: q.Compiled, name: str, connection: str | None = None
    ) -> list[dict[str, Any]]:
        with _store_errors():
            result = self.store.query(
                compiled.statements[name],
                compiled.params,
                settings={**compiled.settings, **self.limits},
                connection=connection,
            )
        return result.dicts()

    def _run_all(self, compiled: q.Compiled) -> dict[str, list[dict[str, Any]]]:
        """Every statement of a report at once: the store serves concurrent statements, so
        a report costs about its slowest statement rather than their sum."""
        names = list(compiled.statements)
        if len(names) == 1:
            return {names[0]: self._run(compiled, names[0])}
        # A connection runs one statement at a time: each statement gets its own.
        futures = {
            name: self._pool.submit(self._run, compiled, name, f"report-{i}")
            for i, name in enumerate(names)
        }
        return {name: future.result() for name, future in futures.items()}

    def _scope(self, ctx: ProjectContext, include_bots: bool = False) -> q.Scope:
        # Skipping the person join when a project has no aliases changes no answer. Once a
        # project has links it is taken to keep them (joining with none left is still right).
        has = ctx.project_id in self._linked
        if not has:
            compiled = q.compile_has_aliases(project_id=ctx.project_id)
            has = bool(self._scalar_of(compiled, "has"))
            if has:
                self._linked.add(ctx.project_id)
        return q.Scope(ctx.project_id, ctx.timezone, include_bots, has)

    def _plan(
        self,
        scope: q.Scope,
        start: datetime,
        end: datetime,
        split: datetime | None = None,
        *,
        persons: bool = True,
    ) -> rollups.Plan:
        """Which days of [start, end) a report reads from rollups (after turning new person
        links into dirty marks, for reports that count persons), and ask the builder to keep
        this project's rollups built."""
        try:
            # The link check and the day states at once, on connections of their own; only
            # when new links were turned into marks are the states read again.
            states = self._pool.submit(self._states.get, scope, connection="plan-days")
            if persons and self.aliases.sync(scope.project_id, connection="plan-links"):
                states.result()
                states = self._pool.submit(self._states.get, scope, connection="plan-days")
            plan = rollups.plan(self.store, scope, start, end, split=split, states=states.result())
        except EventStoreError as exc:
            raise BadRequest(f"query failed: {exc}", code="query_failed") from exc
        if self.scheduler is not None:
            self.scheduler.want(scope.project_id, scope.tz)
        return plan

    def _range(
        self,
        ctx: ProjectContext,
        query: Any,
        interval: Interval | None = None,
        default_from: str = "-7d",
    ) -> TimeRange:
        first: datetime | None = None
        if (query.date_from or "").strip() == "all":
            row = self._run(
                q.compile_first_event(scope=q.Scope(ctx.project_id, ctx.timezone)), "first"
            )
            values = list(row[0].values()) if row else [None, 0]
            if values[1] and isinstance(values[0], datetime):
                first = values[0]
                if first.tzinfo is None:
                    first = first.replace(tzinfo=UTC)
        return resolve(
            date_from=query.date_from,
            date_to=query.date_to,
            tz_name=ctx.timezone,
            interval=interval,
            now=self.clock(),
            first_event=first,
            default_from=default_from,
        )

    @staticmethod
    def _range_body(rng: TimeRange) -> dict[str, Any]:
        return {
            "date_from": rng.iso(rng.start),
            "date_to": rng.iso(rng.end),
            "interval": rng.interval,
            "timezone": rng.tz,
        }

    # -- trends ------------------------------------------------------------------------------

    def _trends_rows(
        self,
        scope: q.Scope,
        rng: TimeRange,
        query: TrendsQuery,
        *,
        bucketed: bool = True,
    ) -> list[dict[str, Any]]:
        if (
            self.use_rollups
            and bucketed
            and not query.filters
            and query.breakdown is None
            and rng.interval in ("day", "week", "month")
            and all(
                s.measure in ("total", "unique_persons") and not s.filters for s in query.series
            )
        ):
            return self._trends_from_rollups(scope, rng, query.series)
        compiled = q.compile_trends(
            scope=scope,
            rng=rng,
            series=query.series,
            filters=query.filters,
            breakdown=query.breakdown,
            bucketed=bucketed,
        )
        return self._run(compiled, "trends")

    def _trends_from_rollups(
        self, scope: q.Scope, rng: TimeRange, series: list[Series]
    ) -> list[dict[str, Any]]:
        """The rows `compile_trends` would give (bucket, breakdown '', m0..) from rollups."""
        plan = self._plan(scope, rng.start, rng.end)
        compiled = rollups.compile_trends(plan, rng.interval, [s.event for s in series])
        cells: dict[str, dict[tuple[str, str], tuple[int, int]]] = {}
        for row in self._run(compiled, "trends"):
            key = (row["dim"], row["value"])
            cells.setdefault(row["bucket"], {})[key] = (int(row["events"]), int(row["persons"]))
        rows = []
        for bucket, found in cells.items():
            out: dict[str, Any] = {"bucket": bucket, "breakdown": ""}
            for i, s in enumerate(series):
                events, persons = found.get(
                    ("", "") if s.event is None else ("event", s.event), (0, 0)
                )
                out[f"m{i}"] = events if s.measure == "total" else persons
            rows.append(out)
        return rows

    @staticmethod
    def _empty(series: Series) -> Any:
        if series.measure in ("total", "unique_persons", "sessions"):
            return 0
        if series.measure == "sum":
            return "0" if series.property in BIGINT_COLUMNS else 0
        return None

    def _shape_series(
        self, rows: list[dict[str, Any]], rng: TimeRange, series: list[Series]
    ) -> list[dict[str, Any]]:
        labels = rng.buckets()
        by_group: dict[str, dict[str, dict[str, Any]]] = {}
        totals: dict[str, dict[str, Any]] = {}
        for row in rows:
            group = row["breakdown"]
            if row["bucket"] == "":
                totals[group] = row
            else:
                by_group.setdefault(group, {})[row["bucket"]] = row
        groups = sorted(
            totals,
            key=lambda g: (g == q.OTHER, -(_to_number(totals[g].get("m0")) or 0), g),
        )
        shaped = []
        for i, s in enumerate(series):
            col = f"m{i}"
            empty = self._empty(s)

            def points(group: str, col: str = col, empty: Any = empty) -> list[dict[str, Any]]:
                cells = by_group.get(group, {})
                return [
                    {
                        "bucket": rng.label_iso(label),
                        "value": _num(cells[label][col]) if label in cells else empty,
                    }
                    for label in labels
                ]

            item: dict[str, Any] = {
                "label": s.display_name(),
                "event": s.event,
                "measure": s.measure,
                "property": s.property,
            }
            if groups == [""] or not groups:
                total_row = totals.get("")
                item["total"] = _num(total_row[col]) if total_row else empty
                item["data"] = points("")
            else:
                item["breakdown"] = [
                    {
                        "value": g,
                        "total": _num(totals[g][col]),
                        "data": points(g),
                    }
                    for g in groups
                ]
                item["total"] = None
            shaped.append(item)
        return shaped

    def _trends(self, ctx: ProjectContext, query: TrendsQuery) -> dict[str, Any]:
        scope = self._scope(ctx, query.include_bots)
        rng = self._range(ctx, query, query.interval)
        series = self._shape_series(self._trends_rows(scope, rng, query), rng, query.series)
        if query.breakdown is not None:
            # Totals of every series over the whole range, across groups.
            plain = query.model_copy(update={"breakdown": None})
            overall = self._shape_series(
                self._trends_rows(scope, rng, plain, bucketed=False), rng, query.series
            )
            for item, whole in zip(series, overall, strict=True):
                item["total"] = whole["total"]
        body: dict[str, Any] = {"kind": "trends", **self._range_body(rng), "series": series}
        if query.compare:
            prev = rng.previous()
            prev_series = self._shape_series(
                self._trends_rows(scope, prev, query.model_copy(update={"breakdown": None})),
                prev,
                query.series,
            )
            body["previous"] = {"date_from": prev.iso(prev.start), "date_to": prev.iso(prev.end)}
            for item, before in zip(series, prev_series, strict=True):
                item["compare"] = change(item["total"], before["total"])
                if "data" in item:
                    for point, old in zip(item["data"], before["data"], strict=False):
                        point["previous"] = old["value"]
                        point["previous_bucket"] = old["bucket"]
                        point["change_pct"] = change(point["value"], old["value"])["change_pct"]
        return body

    # -- summary and breakdown -----------------------------------------------------------------

    def _summary_rows(
        self, scope: q.Scope, rng: TimeRange, query: SummaryQuery
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """(this period, the previous one) from one statement over both."""
        names = list(q.SUMMARY_DIMENSIONS)
        n = len(names)

        def empty() -> dict[str, Any]:
            return {"total_events": 0, "unique_users": 0, "dims": {k: {} for k in names}}

        periods = {1: empty(), 0: empty()}
        if self.use_rollups and not query.filters:
            plan = self._plan(scope, rng.previous().start, rng.end, rng.start)
            by_dim = {dim: name for name, dim in rollups.SUMMARY_DIMENSIONS.items()}
            for row in self._run(rollups.compile_summary(plan, rng), "summary"):
                out = periods[int(row["cur"])]
                counts = (int(row["events"]), int(row["persons"]))
                if row["dim"] == "":
                    out["total_events"], out["unique_users"] = counts
                elif row["value"] != "" or row["dim"] != rollups.PAGE_DIMENSION:
                    out["dims"][by_dim[row["dim"]]][row["value"]] = counts
            return periods[1], periods[0]
        compiled = q.compile_summary(scope=scope, rng=rng, filters=query.filters)
        rows = self._run(compiled, "summary")
        for row in rows:
            out = periods[int(row["cur"])]
            g = int(row["g"])
            if g == (1 << n) - 1:
                out["total_events"] = int(row["events"])
                out["unique_users"] = int(row["persons"])
                continue
            # grouping() sets a bit for every argument NOT in the current grouping set.
            for i in range(n):
                if not g & (1 << (n - 1 - i)):
                    value = row[f"d{i}"]
                    if value != "" or names[i] not in ("pages",):
                        out["dims"][names[i]][value] = (int(row["events"]), int(row["persons"]))
                    break
        return periods[1], periods[0]

    def _summary(self, ctx: ProjectContext, query: SummaryQuery) -> dict[str, Any]:
        scope = self._scope(ctx, query.include_bots)
        rng = self._range(ctx, query, "day")
        cur, prev = self._summary_rows(scope, rng, query)
        prev_rng = rng.previous()
        body: dict[str, Any] = {
            "kind": "summary",
            **self._range_body(rng),
            "previous": {
                "date_from": prev_rng.iso(prev_rng.start),
                "date_to": prev_rng.iso(prev_rng.end),
            },
            "total_events": cur["total_events"],
            "unique_users": cur["unique_users"],
            "comparison": {
                "total_events": change(cur["total_events"], prev["total_events"]),
                "unique_users": change(cur["unique_users"], prev["unique_users"]),
            },
        }
        for name in q.SUMMARY_DIMENSIONS:
            values = cur["dims"][name]
            before = prev["dims"][name]
            top = sorted(values.items(), key=lambda kv: (-kv[1][0], kv[0]))[: query.limit]
            body[name] = [
                {
                    "value": value,
                    "events": events,
                    "unique_users": persons,
                    "previous_events": before.get(value, (0, 0))[0],
                    "previous_unique_users": before.get(value, (0, 0))[1],
                    "change_pct": change(events, before.get(value, (0, 0))[0])["change_pct"],
                }
                for value, (events, persons) in top
            ]
        body["top_pages"] = body["pages"]
        return body

    def _breakdown(self, ctx: ProjectContext, query: BreakdownStatsQuery) -> dict[str, Any]:
        scope = self._scope(ctx, query.include_bots)
        rng = self._range(ctx, query, "day")
        prev_rng = rng.previous()
        cur: dict[str, tuple[int, int]] = {}
        prev: dict[str, tuple[int, int]] = {}
        dim = self._rollup_dimension(query)
        if dim is not None:
            cur, prev = self._breakdown_from_rollups(scope, rng, dim, query.limit)
        else:
            compiled = q.compile_breakdown(scope=scope, rng=rng, query=query)
            for row in self._run(compiled, "breakdown"):
                target = cur if int(row["cur"]) else prev
                target[row["breakdown"]] = (int(row["events"]), int(row["persons"]))
        ordered = sorted(cur.items(), key=lambda kv: (kv[0] == q.OTHER, -kv[1][0], kv[0]))
        return {
            "kind": "breakdown",
            "dimension": query.property,
            **self._range_body(rng),
            "previous": {
                "date_from": prev_rng.iso(prev_rng.start),
                "date_to": prev_rng.iso(prev_rng.end),
            },
            "results": [
                {
                    "value": value,
                    "events": events,
                    "unique_users": persons,
                    "previous_events": prev.get(value, (0, 0))[0],
                    "previous_unique_users": prev.get(value, (0, 0))[1],
                    "change_pct": change(events, prev.get(value, (0, 0))[0])["change_pct"],
                }
                for value, (events, persons) in ordered
            ],
        }

    def _rollup_dimension(self, query: BreakdownStatsQuery) -> str | None:
        """The rollup dimension that answers this breakdown, if one does."""
        if not self.use_rollups or query.filters:
            return None
        if query.property == rollups.PAGE_DIMENSION:
            return query.property if query.event == "$pageview" else None
        if query.property in rollups.DIMENSIONS and query.property and query.event is None:
            return query.property
        return None

    def _breakdown_from_rollups(
        self, scope: q.Scope, rng: TimeRange, dim: str, limit: int
    ) -> tuple[dict[str, tuple[int, int]], dict[str, tuple[int, int]]]:
        """Top values by events this period plus "$other", for both periods."""
        plan = self._plan(scope, rng.previous().start, rng.end, rng.start)
        values: dict[int, dict[str, tuple[int, int]]] = {1: {}, 0: {}}
        compiled = rollups.compile_breakdown(plan, rng, dim, limit)
        for row in self._run(compiled, "breakdown"):
            counts = (int(row["events"]), int(row["persons"]))
            values[int(row["cur"])][row["breakdown"]] = counts
        return values[1], values[0]

    def _realtime(self, ctx: ProjectContext, query: RealtimeQuery) -> dict[str, Any]:
        scope = self._scope(ctx)
        now = self.clock()
        since = now - timedelta(minutes=query.minutes)
        compiled = q.compile_realtime(scope=scope, since=since)
        totals = self._run(compiled, "totals")[0]
        return {
            "kind": "realtime",
            "minutes": query.minutes,
            "date_from": _iso(since, ctx.timezone),
            "date_to": _iso(now, ctx.timezone),
            "interval": "minute",
            "visitors": int(totals["visitors"]),
            "events": int(totals["events"]),
            "pageviews": int(totals["pageviews"]),
            "pages": self._run(compiled, "pages"),
            "per_minute": [
                {
                    "bucket": datetime.strptime(r["bucket"], "%Y-%m-%d %H:%M:%S")
                    .replace(tzinfo=zone(ctx.timezone))
                    .isoformat(),
                    "events": int(r["events"]),
                    "visitors": int(r["visitors"]),
                }
                for r in self._run(compiled, "minutes")
            ],
        }

    # -- funnel ------------------------------------------------------------------------------

    def _funnel(self, ctx: ProjectContext, query: FunnelQuery) -> dict[str, Any]:
        scope = self._scope(ctx, query.include_bots)
        rng = self._range(ctx, query, "day")
        rows: list[dict[str, Any]] | None = None
        if self.use_rollups and rollups.funnel_applies(query):
            plan = self._plan(scope, rng.start, rng.end)
            if plan.clean or plan.person_edges():
                rows = self._rollup_funnel(plan, query)
        if rows is None:
            rows = self._run(q.compile_funnel(scope=scope, rng=rng, query=query), "funnel")
        n = len(query.steps)
        # grouping(breakdown) = 1 marks the grand-total row of GROUPING SETS ((breakdown), ()).
        overall = next((r for r in rows if int(r["g"]) == 1), None)
        per_group: list[dict[str, Any]] = []
        if query.breakdown is not None:
            groups = [r for r in rows if int(r["g"]) == 0]
            per_group = self._fold_other(groups, n, query.breakdown.limit)

        def steps(row: dict[str, Any] | None) -> list[dict[str, Any]]:
            counts = [int(row[f"s{k}"]) if row else 0 for k in range(1, n + 1)]
            out = []
            for k, step in enumerate(query.steps, start=1):
                persons = counts[k - 1]
                first = counts[0]
                prev = counts[k - 2] if k > 1 else persons
                median = _num(row[f"t{k}"]) if (row and k > 1) else None
                out.append(
                    {
                        "step": k,
                        "event": step.event,
                        "name": step.name or step.event,
                        "persons": persons,
                        "conversion_from_first": round(persons * 100.0 / first, 2)
                        if first
                        else 0.0,
                        "conversion_from_previous": round(persons * 100.0 / prev, 2)
                        if prev
                        else 0.0,
                        "drop_off": (prev - persons) if k > 1 else 0,
                        "drop_off_pct": round((prev - persons) * 100.0 / prev, 2)
                        if (k > 1 and prev)
                        else 0.0,
                        "median_seconds_to_convert": median if persons else None,
                    }
                )
            return out

        body: dict[str, Any] = {
            "kind": "funnel",
            **self._range_body(rng),
            "order": query.order,
            "window_seconds": query.window_seconds,
            "steps": steps(overall),
        }
        if query.breakdown is not None:
            body["breakdown"] = [{"value": r["breakdown"], "steps": steps(r)} for r in per_group]
        return body

    def _rollup_funnel(self, plan: rollups.Plan, query: FunnelQuery) -> list[dict[str, Any]]:
        """The funnel's grand-total row from person-event rollups (no breakdown there): from
        the rows held in memory, or in SQL when they do not fit."""
        if self.funnels is not None:
            with _store_errors():
                row = self.funnels.funnel(plan, query)
            if row is not None:
                return [row]
        found = self._run_all(rollups.compile_funnel(plan, query))
        n = len(query.steps)
        overall = next((r for r in found["funnel"] if int(r["g"]) == 1), None)
        if overall is None:  # nobody got past step 1
            overall = {"g": 1, "breakdown": ""}
            overall.update({f"s{k}": 0 for k in range(2, n + 1)})
            overall.update({f"t{k}": None for k in range(2, n + 1)})
        # Step 1 counts everyone who did it, not only the persons who got a timeline.
        overall["s1"] = int(found["first_step"][0]["s1"]) if found["first_step"] else 0
        return [overall]

    @staticmethod
    def _fold_other(rows: list[dict[str, Any]], n: int, limit: int) -> list[dict[str, Any]]:
        rows = sorted(rows, key=lambda r: (-int(r["s1"]), str(r["breakdown"])))
        top, rest = rows[:limit], rows[limit:]
        if rest:
            other: dict[str, Any] = {"breakdown": q.OTHER}
            for k in range(1, n + 1):
                other[f"s{k}"] = sum(int(r[f"s{k}"]) for r in rest)
                other[f"t{k}"] = None  # medians of separate groups do not combine
            top.append(other)
        return top

    # -- retention ---------------------------------------------------------------------------

    def _retention(self, ctx: ProjectContext, query: RetentionQuery) -> dict[str, Any]:
        scope = self._scope(ctx, query.include_bots)
        rng = self._range(ctx, query, query.interval, default_from="-30d")
        person_days = None
        compiled: q.Compiled | None = None
        if self.use_rollups and not query.filters and query.return_event is None:
            plan = self._plan(scope, rng.start, rng.end)
            if rollups.retention_applies(query) and plan.first_days_usable(self.store):
                compiled = rollups.compile_retention(plan, rng, query)
            elif plan.clean or plan.person_edges():
                person_days = plan.person_days
        if compiled is None:
            compiled = q.compile_retention(
                scope=scope, rng=rng, query=query, person_days=person_days
            )
        sizes: dict[str, int] = {}
        matrix: dict[str, list[int]] = {}
        eligible = {1: 0, 7: 0, 30: 0}
        rates = {1: 0, 7: 0, 30: 0}
        for r in self._run(compiled, "cohorts"):
            sizes[r["cohort"]] = int(r["persons"])
            matrix[r["cohort"]] = [int(v) for v in r["returned"]]
            for n in eligible:
                eligible[n] += int(r[f"e{n}"])
                rates[n] += int(r[f"r{n}"])
        cohorts = []
        for label in rng.buckets():
            size = sizes.get(label, 0)
            values = [size, *matrix.get(label, [0] * query.periods)]
            cohorts.append(
                {
                    "cohort": rng.label_iso(label),
                    "persons": size,
                    "values": values,
                    "rates": [round(v * 100.0 / size, 2) if size else 0.0 for v in values],
                }
            )
        day_rates = {}
        for n in (1, 7, 30):
            base = eligible.get(n, 0)
            day_rates[f"day_{n}"] = round(rates.get(n, 0) * 100.0 / base, 2) if base else None
        return {
            "kind": "retention",
            **self._range_body(rng),
            "start_event": query.start_event,
            "return_event": query.return_event,
            "periods": query.periods,
            "cohorts": cohorts,
            "rates": day_rates,
        }

    # -- active users ------------------------------------------------------------------------

    def _active_users(self, ctx: ProjectContext, query: ActiveUsersQuery) -> dict[str, Any]:
        scope = self._scope(ctx, query.include_bots)
        rng = self._range(ctx, query, "day", default_from="-30d")
        # MAU needs the 30 days before the first one: from a local midnight, so that with
        # rollups the look-back is whole days (31 days back across a DST change is not).
        first = rng.start.astimezone(rng.zone).date() - timedelta(days=31)
        lookback = datetime(first.year, first.month, first.day, tzinfo=rng.zone).astimezone(UTC)
        if self.use_rollups and not query.filters:
            return self._active_users_from_rollups(scope, rng, lookback)
        compiled = q.compile_active_users(
            scope=scope, rng=rng, filters=query.filters, lookback_start=lookback
        )
        dau: dict[str, int] = {}
        deltas: dict[str, dict[str, int]] = {"w": {}, "m": {}}
        for r in self._run(compiled, "active"):
            if r["kind"] == "d":
                dau[r["day"]] = int(r["delta"])
            else:
                deltas[r["kind"]][r["day"]] = int(r["delta"])
        labels = rng.buckets()
        running = {"w": 0, "m": 0}
        # Deltas before the first label accumulate first.
        for kind in ("w", "m"):
            running[kind] = sum(v for d, v in deltas[kind].items() if d < labels[0])
        counts: dict[str, tuple[int, int, int]] = {}
        for label in labels:
            wau = running["w"] + deltas["w"].get(label, 0)
            mau = running["m"] + deltas["m"].get(label, 0)
            running["w"], running["m"] = wau, mau
            counts[label] = (dau.get(label, 0), wau, mau)
        return self._active_users_body(rng, labels, counts)

    def _active_users_body(
        self, rng: TimeRange, labels: list[str], counts: dict[str, tuple[int, int, int]]
    ) -> dict[str, Any]:
        """The report from (DAU, WAU, MAU) per day label (a missing label counts zero)."""
        data: list[dict[str, Any]] = []
        for label in labels:
            dau, wau, mau = counts.get(label, (0, 0, 0))
            data.append(
                {
                    "bucket": rng.label_iso(label),
                    "dau": dau,
                    "wau": wau,
                    "mau": mau,
                    "stickiness": round(dau / mau, 4) if mau else 0.0,
                }
            )
        avg_stick = [float(p["stickiness"]) for p in data if p["mau"]]
        return {
            "kind": "active_users",
            **self._range_body(rng),
            "data": data,
            "stickiness": round(sum(avg_stick) / len(avg_stick), 4) if avg_stick else 0.0,
        }

    def _active_users_from_rollups(
        self, scope: q.Scope, rng: TimeRange, lookback: datetime
    ) -> dict[str, Any]:
        plan = self._plan(scope, lookback, rng.end)
        labels = rng.buckets()
        found = {
            r["day"]: (int(r["dau"]), int(r["wau"]), int(r["mau"]))
            for r in self._run(rollups.compile_active_users(plan, labels), "active")
        }
        return self._active_users_body(rng, labels, found)

    # -- paths -------------------------------------------------------------------------------

    def _paths(self, ctx: ProjectContext, query: PathsQuery) -> dict[str, Any]:
        scope = self._scope(ctx, query.include_bots)
        rng = self._range(ctx, query, "day")
        compiled = q.compile_paths(scope=scope, rng=rng, query=query)
        total = int(self._scalar_of(compiled, "total") or 0)
        steps: dict[int, list[dict[str, Any]]] = {}
        for r in self._run(compiled, "steps"):
            steps.setdefault(int(r["step"]), []).append({"event": r["name"], "count": int(r["n"])})
        return {
            "kind": "paths",
            **self._range_body(rng),
            "event": query.event,
            "direction": query.direction,
            "occurrences": total,
            "paths": [
                {"path": list(r["seq"]), "count": int(r["n"])} for r in self._run(compiled, "paths")
            ],
            "steps": [{"step": k, "events": steps[k]} for k in sorted(steps)],
        }

    def _scalar_of(self, compiled: q.Compiled, name: str) -> Any:
        rows = self._run(compiled, name)
        return next(iter(rows[0].values())) if rows else None

    # -- person ------------------------------------------------------------------------------

    def _person(self, ctx: ProjectContext, query: PersonQuery) -> dict[str, Any]:
        scope = q.Scope(ctx.project_id, ctx.timezone, True, True)
        ids_plan = q.compile_person_ids(scope=scope, distinct_id=query.distinct_id)
        person_id = str(self._scalar_of(ids_plan, "person"))
        ids = {query.distinct_id, person_id}
        ids.update(str(r["distinct_id"]) for r in self._run(ids_plan, "ids"))
        compiled = q.compile_person(scope=scope, distinct_ids=sorted(ids), limit=query.limit)
        profile = self._run(compiled, "profile")[0]
        if int(profile["total_events"]) == 0:
            raise NotFound(f"no events for distinct id {query.distinct_id!r}")
        traits: dict[str, Any] = {}
        for r in self._run(compiled, "traits"):
            try:
                props = orjson.loads(r["properties"]) if r["properties"] else {}
            except orjson.JSONDecodeError:
                continue
            if isinstance(props, dict):
                inner = props.get("traits")
                traits.update(inner if isinstance(inner, dict) else props)
        return {
            "kind": "person",
            "distinct_id": query.distinct_id,
            "person_id": person_id,
            "distinct_ids": sorted(ids),
            "first_seen": _iso(profile["first_seen"], ctx.timezone),
            "last_seen": _iso(profile["last_seen"], ctx.timezone),
            "total_events": int(profile["total_events"]),
            "sessions": int(profile["sessions"]),
            "properties": traits,
            "recent_events": [event_row(r, ctx.timezone) for r in self._run(compiled, "recent")],
        }

    # -- activity feed -----------------------------------------------------------------------

    def _events(self, ctx: ProjectContext, query: EventsQuery) -> dict[str, Any]:
        scope = q.Scope(ctx.project_id, ctx.timezone, query.include_bots, False)
        rng = self._range(ctx, query, "day", default_from="-30d")
        cursor = decode_cursor(query.cursor) if query.cursor else None
        compiled = q.compile_events(scope=scope, rng=rng, query=query, cursor=cursor)
        rows = self._run(compiled, "events")
        page, more = rows[: query.limit], len(rows) > query.limit
        next_cursor = None
        if more and page:
            last = page[-1]
            next_cursor = encode_cursor(last["timestamp"], str(last["event_id"]))
        return {
            "kind": "events",
            **self._range_body(rng),
            "results": [event_row(r, ctx.timezone) for r in page],
            "next_cursor": next_cursor,
        }

    def get_event(self, ctx: ProjectContext, event_id: str) -> dict[str, Any]:
        scope = q.Scope(ctx.project_id, ctx.timezone, True, False)
        rows = self._run(q.compile_event_by_id(scope=scope, event_id=event_id), "event")
        if not rows:
            raise NotFound(f"event {event_id} not found")
        return event_row(rows[0], ctx.timezone)

    def live_batch(
        self,
        ctx: ProjectContext,
        after: datetime,
        limit: int = 200,
        exclude: Sequence[str] = (),
    ) -> list[dict[str, Any]]:
        """Events received after `after`, oldest first, without the ids in `exclude`."""
        scope = q.Scope(ctx.project_id, ctx.timezone)
        compiled = q.compile_live(scope=scope, after=after, limit=limit, exclude=exclude)
        return self._run(compiled, "live")

    # -- API metrics -------------------------------------------------------------------------

    @staticmethod
    def _api_row(row: dict[str, Any], minutes: float | None = None) -> dict[str, Any]:
        count = int(row["request_count"])
        quantiles = list(row["q"]) if count else [None, None, None]
        out = {
            "request_count": count,
            "error_count": int(row["error_count"]),
            "error_rate": round(int(row["error_count"]) * 100.0 / count, 2) if count else 0.0,
            "server_error_count": int(row["server_error_count"]),
            "server_error_rate": round(int(row["server_error_count"]) * 100.0 / count, 2)
            if count
            else 0.0,
            "avg": _ms(row["avg"]) if count else None,
            "p50": _ms(quantiles[0]),
            "p95": _ms(quantiles[1]),
            "p99": _ms(quantiles[2]),
            "max": _num(row["max"]) if count else None,
        }
        if minutes is not None:
            out["requests_per_minute"] = round(count / minutes, 4)
        return out

    def _api_from_rollups(
        self, scope: q.Scope, rng: TimeRange, query: ApiMetricsQuery
    ) -> dict[str, list[dict[str, Any]]] | None:
        """The summary, endpoint and series rows from API rollups, or None where they can't
        answer (filters, minute or hour buckets, no clean day in the range)."""
        if not self.use_rollups or query.filters or rng.interval not in ("day", "week", "month"):
            return None
        plan = self._plan(scope, rng.start, rng.end, persons=False)
        if not plan.clean:
            return None
        parts: dict[int, list[dict[str, Any]]] = {0: [], 1: [], 2: []}
        for row in self._run(rollups.compile_api_metrics(plan, rng.interval, query.sort), "api"):
            parts[int(row["part"])].append(row)
        return {
            "summary": parts[0] or [_NO_REQUESTS],  # no request in the range: no row at all
            "endpoints": parts[1][: query.limit],
            "series": parts[2],
        }

    def _api_metrics(self, ctx: ProjectContext, query: ApiMetricsQuery) -> dict[str, Any]:
        scope = q.Scope(ctx.project_id, ctx.timezone, query.include_bots, False)
        rng = self._range(ctx, query, query.interval)
        results = self._api_from_rollups(scope, rng, query)
        if results is None:
            results = self._run_all(q.compile_api_metrics(scope=scope, rng=rng, query=query))
        summary = self._api_row(results["summary"][0], rng.minutes)
        endpoints = [
            {"method": r["method"], "route": r["route"], **self._api_row(r, rng.minutes)}
            for r in results["endpoints"]
        ]
        by_bucket = {r["bucket"]: r for r in results["series"]}
        step = {"minute": 1.0, "hour": 60.0, "day": 1440.0, "week": 10080.0, "month": 43200.0}
        series = []
        for label in rng.buckets():
            cell = self._api_row(by_bucket.get(label, _NO_REQUESTS), step[rng.interval])
            series.append({"bucket": rng.label_iso(label), **cell})
        return {
            "kind": "api_metrics",
            **self._range_body(rng),
            "summary": summary,
            "endpoints": endpoints,
            "sort": query.sort,
            "series": series,
        }

    # -- Web3 --------------------------------------------------------------------------------

    def _web3(self, ctx: ProjectContext, query: Web3Query) -> dict[str, Any]:
        scope = self._scope(ctx, query.include_bots)
        rng = self._range(ctx, query, query.interval)
        compiled = q.compile_web3(scope=scope, rng=rng, query=query)
        s = self._run(compiled, "summary")[0]
        t = self._run(compiled, "transactions")[0]
        tx, ok, bad = int(t["tx_count"]), int(t["success_count"]), int(t["failed_count"])
        by_bucket = {r["bucket"]: r for r in self._run(compiled, "series")}
        tx_by_bucket = {r["bucket"]: r for r in self._run(compiled, "tx_series")}
        series = []
        for label in rng.buckets():
            row = by_bucket.get(label)
            txs = tx_by_bucket.get(label)
            series.append(
                {
                    "bucket": rng.label_iso(label),
                    "tx_count": int(txs["tx_count"]) if txs else 0,
                    "success_count": int(txs["success_count"]) if txs else 0,
                    "unique_wallets": int(row["unique_wallets"]) if row else 0,
                }
            )
        return {
            "kind": "web3",
            **self._range_body(rng),
            "summary": {
                "tx_count": tx,
                "success_count": ok,
                "failed_count": bad,
                "success_rate": round(ok * 100.0 / (ok + bad), 2) if (ok + bad) else None,
                "unique_wallets": int(s["unique_wallets"]),
                "unique_persons": int(s["unique_persons"]),
            },
            "volume": [
                {
                    "chain_id": int(r["chain_id"]),
                    "token": r["token"],
                    "tx_count": int(r["tx_count"]),
                    "volume": str(r["volume"]),
                }
                for r in self._run(compiled, "volume")
            ],
            "top_contracts": [
                {
                    "contract": r["contract"],
                    "tx_count": int(r["tx_count"]),
                    "wallets": int(r["wallets"]),
                    "volume": str(r["volume"]),
                }
                for r in self._run(compiled, "contracts")
            ],
            "wallets": [
                {
                    "wallet": r["wallet"],
                    "persons": sorted(str(p) for p in r["persons"]),
                    "events": int(r["events"]),
                    "tx_count": int(r["tx_count"]),
                    "first_seen": _iso(r["first_seen"], ctx.timezone),
                    "last_seen": _iso(r["last_seen"], ctx.timezone),
                }
                for r in self._run(compiled, "wallets")
            ],
            "series": series,
        }

    # -- visits ------------------------------------------------------------------------------

    def _sessions(self, ctx: ProjectContext, query: SessionsQuery) -> dict[str, Any]:
        scope = self._scope(ctx, query.include_bots)
        rng = self._range(ctx, query, "day")
        compiled = q.compile_sessions(scope=scope, rng=rng, filters=query.filters)
        by_period = {int(row["cur"]): row for row in self._run(compiled, "sessions")}

        def figures(row: dict[str, Any] | None) -> dict[str, Any]:
            visits = int(row["visits"]) if row else 0
            if not row or not visits:
                return {
                    "visits": 0,
                    "bounce_rate": None,
                    "avg_duration_seconds": None,
                    "views_per_visit": None,
                }
            return {
                "visits": visits,
                "bounce_rate": round(100.0 * int(row["bounces"]) / visits, 2),
                "avg_duration_seconds": round(float(row["avg_duration_seconds"]), 1),
                "views_per_visit": round(int(row["pageviews"]) / visits, 2),
            }

        cur, prev = figures(by_period.get(1)), figures(by_period.get(0))
        prev_rng = rng.previous()
        return {
            "kind": "sessions",
            **self._range_body(rng),
            "previous": {
                "date_from": prev_rng.iso(prev_rng.start),
                "date_to": prev_rng.iso(prev_rng.end),
                **prev,
            },
            **cur,
            "comparison": {name: change(cur[name], prev[name]) for name in cur},
        }
