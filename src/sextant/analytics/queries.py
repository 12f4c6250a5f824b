"""Every report kind compiled to parameterised ClickHouse SQL, in this one module.

Rules that hold for every statement built here:
- rows come from `events FINAL`, so a retried message (same message id) counts once;
- `project_id = {project_id:UUID}` is always in the WHERE clause, whatever the filters say;
- bots are excluded unless the query asks for them;
- a person is the latest `person_aliases` mapping of a distinct id, else the distinct id;
- time buckets and day boundaries are computed in the project's time zone, which is a
  validated IANA name passed as a bound parameter;
- user values only ever travel as bound parameters; column names come from an allow-list
  and JSON property names are validated and bound too.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sextant.analytics.schemas import (
    BIGINT_COLUMNS,
    NUMBER_COLUMNS,
    PROPERTY_PREFIX,
    STRING_COLUMNS,
    ApiMetricsQuery,
    Breakdown,
    BreakdownStatsQuery,
    EventsQuery,
    Filter,
    FilterGroup,
    FilterItem,
    FunnelQuery,
    Interval,
    PathsQuery,
    RetentionQuery,
    Series,
    Web3Query,
)
from sextant.analytics.timerange import TimeRange
from sextant.core.errors import BadRequest
from sextant.ingest.event import EVENT_COLUMNS as STORED_COLUMNS

# Distinct counts hash their argument to 64 bits first (cityHash64): exact up to hash
# collisions (odds about 1 in 10^6 of being off by one at four million persons), and
# markedly cheaper than hashing whole strings to 128 bits.
# Deduplicated reads stay inside a partition: the partition key is derived from the sort
# key (the month of the timestamp), so duplicates can never sit in different partitions.
QUERY_SETTINGS: dict[str, Any] = {
    "do_not_merge_across_partitions_select_final": 1,
    "join_use_nulls": 0,
}
OTHER = "$other"
UTC64 = "DateTime64(3, 'UTC')"
# An event as the activity feed shows it: every stored column but the tenant and the IP
# fields (a hash, and the raw address on opt-in), which no report hands out.
EVENT_COLUMNS = tuple(c for c in STORED_COLUMNS if c not in ("project_id", "ip_hash", "ip"))
TX_SUCCESS = ("success", "confirmed", "succeeded")
TX_FAILED = ("failed", "reverted", "dropped", "error")


def _ts(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S.") + f"{moment.microsecond // 1000:03d}"


@dataclass
class Params:
    """Bound parameters of one compiled query; names are generated, never user-chosen."""

    values: dict[str, Any] = field(default_factory=dict)
    counter: int = 0

    def bind(self, value: Any, type_: str) -> str:
        name = f"p{self.counter}"
        self.counter += 1
        self.values[name] = value
        return "{" + name + ":" + type_ + "}"


@dataclass(frozen=True, slots=True)
class Scope:
    """What every statement of a project needs: tenant, zone, bots, person mapping."""

    project_id: str
    tz: str
    include_bots: bool = False
    has_aliases: bool = True


@dataclass(frozen=True)
class Compiled:
    """Named statements sharing one parameter set."""

    statements: dict[str, str]
    params: dict[str, Any]
    settings: dict[str, Any] = field(default_factory=lambda: dict(QUERY_SETTINGS))


# The latest person of every aliased distinct id of the project. `person_aliases` is a
# ReplacingMergeTree on (project, distinct id) by `updated_at`: FINAL keeps each id's latest
# link (as argMax would), in a quarter of the time of grouping the ids (10M demo, 150k links:
# 13 vs 50 ms, paid by every statement that maps persons). WHERE applies after FINAL.
_LATEST_LINKS = "person_aliases FINAL WHERE project_id = {project_id:UUID}"
ALIASES = f"SELECT distinct_id, person_id FROM {_LATEST_LINKS}"

# The same mapping as two parallel arrays (distinct-id hash -> person hash) in one scalar
# subquery: ClickHouse evaluates it once per statement, and `transform` over constant arrays
# looks each row up in a hash table built once, far cheaper than a hash JOIN (which also
# stops the time and project filters from being applied while reading).
ALIAS_MAP = (
    "(SELECT (groupArray(cityHash64(distinct_id)), groupArray(cityHash64(person_id))) "
    f"FROM {_LATEST_LINKS} AND person_id != '')"
)


# The same mapping as a hash join on the distinct-id hash (unlinked ids: ph = 0). Cheaper
# than `transform` where rows are grouped per person afterwards (funnel 0.6 -> 0.25 s,
# retention 2.1 -> 1.3 s at 10M demo events) or few rows are read; `transform` stays ahead
# for whole-range scans that only count persons (summary, trends, rollup builds).
PERSON_JOIN = (
    "(SELECT cityHash64(distinct_id) AS h, cityHash64(person_id) AS ph "
    f"FROM {_LATEST_LINKS} AND person_id != '')"
)


class Source:
    """`FROM events FINAL [JOIN person mapping] WHERE tenant AND time AND bots AND filters`."""

    def __init__(
        self,
        scope: Scope,
        params: Params,
        rng: TimeRange | None,
        filters: list[FilterItem] | None = None,
        *,
        persons: bool = False,
        by_hash: bool = True,
        join_persons: bool = True,
        extra: list[str] | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
        include_bots: bool | None = None,
    ) -> None:
        self.scope = scope
        self.params = params
        self.params.values.setdefault("project_id", scope.project_id)
        self.params.values.setdefault("tz", scope.tz)
        self.persons = persons and scope.has_aliases
        self.by_hash = by_hash
        self.join_persons = join_persons
        where = ["e.project_id = {project_id:UUID}"]
        lo = start if start is not None else (rng.start if rng else None)
        hi = end if end is not None else (rng.end if rng else None)
        if lo is not None:
            where.append(f"e.timestamp >= {params.bind(_ts(lo), UTC64)}")
        if hi is not None:
            where.append(f"e.timestamp < {params.bind(_ts(hi), UTC64)}")
        bots = scope.include_bots if include_bots is None else include_bots
        if not bots:
            where.append("e.is_bot = 0")
        for item in filters or []:
            where.append(compile_filter(item, params))
        where.extend(extra or [])
        self.where = " AND ".join(where)

    @property
    def from_(self) -> str:
        sql = "events AS e FINAL"
        if self.persons and self.by_hash and self.join_persons:
            sql += f" ANY LEFT JOIN {PERSON_JOIN} AS m ON m.h = e.distinct_hash"
        if self.persons and not self.by_hash:
            sql += f" LEFT JOIN ({ALIASES}) AS pa ON pa.distinct_id = e.distinct_id"
        return sql

    @property
    def person(self) -> str:
        """The person as a string (needs `by_hash=False` when persons are mapped)."""
        if self.persons:
            assert not self.by_hash, "a hashed person mapping has no person string"
            return "if(pa.person_id != '', pa.person_id, e.distinct_id)"
        return "e.distinct_id"

    @property
    def person_hash(self) -> str:
        """The person as a 64-bit hash: the stored `distinct_hash`, or the mapped person's.

        Both sides hash with cityHash64, so an unmapped distinct id and a person id with
        the same text are the same person, exactly as with the string comparison.
        """
        if self.persons and self.by_hash and self.join_persons:
            return "if(m.ph != 0, m.ph, e.distinct_hash)"
        if self.persons and self.by_hash:
            return (
                f"transform(e.distinct_hash, tupleElement({ALIAS_MAP}, 1), "
                f"tupleElement({ALIAS_MAP}, 2), e.distinct_hash)"
            )
        if self.persons:
            return f"cityHash64({self.person})"
        return "e.distinct_hash"

    def sql(self, select: str, tail: str = "") -> str:
        return f"SELECT {select} FROM {self.from_} WHERE {self.where} {tail}".strip()

    def mapped(self, inner: str) -> tuple[str, str]:
        """`FROM (inner) AS i` and the person of `i.did` (the 64-bit hash of a distinct id),
        hashed too: the per-id aggregates of `inner` are mapped through the alias map."""
        if not self.scope.has_aliases:
            return f"({inner}) AS i", "i.did"
        if self.join_persons:
            return (
                f"({inner}) AS i ANY LEFT JOIN {PERSON_JOIN} AS m ON m.h = i.did",
                "if(m.ph != 0, m.ph, i.did)",
            )
        return (
            f"({inner}) AS i",
            f"transform(i.did, tupleElement({ALIAS_MAP}, 1), tupleElement({ALIAS_MAP}, 2), i.did)",
        )


# -- columns, properties and filters -------------------------------------------------------


def _json_path(name: str, params: Params) -> str:
    keys = name[len(PROPERTY_PREFIX) :].split(".")
    return ", ".join(params.bind(key, "String") for key in keys)


def value_expr(name: str, params: Params) -> str:
    """A column or property as a String (for grouping and string comparisons)."""
    if name in STRING_COLUMNS:
        return f"e.{name}"
    if name in NUMBER_COLUMNS or name in BIGINT_COLUMNS:
        return f"toString(e.{name})"
    return f"JSONExtractString(e.properties, {_json_path(name, params)})"


def number_expr(name: str, params: Params) -> str:
    """A column or property as Float64 (for numeric comparisons and aggregates)."""
    if name in NUMBER_COLUMNS:
        return f"toFloat64(e.{name})"
    if name in BIGINT_COLUMNS:
        return f"toFloat64(e.{name})"
    if name in STRING_COLUMNS:
        return f"toFloat64OrZero(e.{name})"
    return f"JSONExtractFloat(e.properties, {_json_path(name, params)})"


def _as_number(flt: Filter, value: Any) -> float:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float):
        return float(value)
    try:
        return float(value)
    except ValueError:
        raise BadRequest(
            f"filters: {flt.property!r} is numeric; {value!r} is not a number"
        ) from None


def _as_bigint(flt: Filter, value: Any) -> str:
    """Exact decimal text of a non-negative integer (UInt256 values exceed floats)."""
    text = str(value).strip() if not isinstance(value, bool) else ""
    if isinstance(value, float) and value.is_integer():
        text = str(int(value))
    if not text.isdigit() or len(text) > 78:
        raise BadRequest(f"filters: {flt.property!r} needs a non-negative integer, got {value!r}")
    return text


# Hex columns: one value in any letter case (wallets and contracts stored checksummed).
HEX_COLUMNS = frozenset({"wallet_address", "contract_address", "tx_hash"})


def compile_filter(item: FilterItem, params: Params) -> str:
    if isinstance(item, FilterGroup):
        joiner = " AND " if item.op == "and" else " OR "
        return "(" + joiner.join(compile_filter(sub, params) for sub in item.filters) + ")"
    return _compile_leaf(item, params)


def _compile_leaf(flt: Filter, params: Params) -> str:
    name, op, value = flt.property, flt.op, flt.value
    is_property = name.startswith(PROPERTY_PREFIX)
    if op in ("is_set", "is_not_set"):
        if is_property:
            expr = f"JSONHas(e.properties, {_json_path(name, params)})"
        elif name in STRING_COLUMNS:
            expr = f"e.{name} != ''"
        else:
            expr = f"e.{name} != 0"
        return expr if op == "is_set" else f"NOT ({expr})"
    if op in ("contains", "not_contains"):
        needle = params.bind(str(value), "String")
        expr = f"positionCaseInsensitiveUTF8({value_expr(name, params)}, {needle}) > 0"
        return expr if op == "contains" else f"NOT ({expr})"
    if op in ("gt", "gte", "lt", "lte"):
        sym = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<="}[op]
        if name in BIGINT_COLUMNS:
            bound = params.bind(_as_bigint(flt, value), "String")
            return f"e.{name} {sym} toUInt256({bound})"
        bound = params.bind(_as_number(flt, value), "Float64")
        return f"{number_expr(name, params)} {sym} {bound}"
    # eq / neq / in / not_in
    values = value if isinstance(value, list) else [value]
    negate = op in ("neq", "not_in")
    if name in BIGINT_COLUMNS:
        bound = params.bind([_as_bigint(flt, v) for v in values], "Array(String)")
        expr = f"has(arrayMap(x -> toUInt256(x), {bound}), e.{name})"
    elif name in NUMBER_COLUMNS:
        bound = params.bind([_as_number(flt, v) for v in values], "Array(Float64)")
        expr = f"has({bound}, toFloat64(e.{name}))"
    elif is_property and all(isinstance(v, bool) for v in values):
        bound = params.bind([int(bool(v)) for v in values], "Array(UInt8)")
        path = _json_path(name, params)
        expr = f"has({bound}, toUInt8(JSONExtractBool(e.properties, {path})))"
    elif is_property and all(
        isinstance(v, int | float) and not isinstance(v, bool) for v in values
    ):
        bound = params.bind([_as_number(flt, v) for v in values], "Array(Float64)")
        expr = f"has({bound}, {number_expr(name, params)})"
    elif name in HEX_COLUMNS:
        # Addresses are stored EIP-55 checksummed and written in any case: compared as hex.
        strings = [str(v).lower() for v in values]
        expr = f"lower(e.{name}) IN {params.bind(strings, 'Array(String)')}"
    else:
        strings = [str(v).lower() if isinstance(v, bool) else str(v) for v in values]
        if len(strings) == 1:
            expr = f"{value_expr(name, params)} = {params.bind(strings[0], 'String')}"
        else:
            expr = f"{value_expr(name, params)} IN {params.bind(strings, 'Array(String)')}"
    return f"NOT ({expr})" if negate else expr


def event_condition(event: str | None, filters: list[FilterItem], params: Params) -> str:
    parts = []
    if event is not None:
        parts.append(f"e.event = {params.bind(event, 'String')}")
    parts.extend(compile_filter(item, params) for item in filters)
    return "(" + " AND ".join(parts) + ")" if parts else "1"


# -- buckets ---------------------------------------------------------------------------------


def bucket_expr(interval: Interval, column: str = "e.timestamp") -> str:
    """The bucket label as a String in the project's zone; matches `TimeRange.buckets()`."""
    fn = {
        "minute": f"toStartOfMinute({column}, {{tz:String}})",
        "hour": f"toStartOfHour({column}, {{tz:String}})",
        "day": f"toDate({column}, {{tz:String}})",
        "week": f"toMonday({column}, {{tz:String}})",
        "month": f"toStartOfMonth({column}, {{tz:String}})",
    }[interval]
    return f"toString({fn})"


# -- trends (also: time series, breakdown, summary) ------------------------------------------


def _measure(series: Series, cond: str, person: str, params: Params) -> str:
    m = series.measure
    if m == "total":
        return f"countIf({cond})"
    if m == "unique_persons":
        return f"uniqExactIf({person}, {cond})"
    if m == "sessions":
        return f"uniqExactIf(cityHash64(e.session_id), {cond} AND e.session_id != '')"
    assert series.property is not None
    prop = series.property
    if prop in BIGINT_COLUMNS:
        if m == "sum":
            return f"toString(sumIf(e.{prop}, {cond}))"
        if m in ("min", "max"):
            return f"if(countIf({cond}) = 0, '', toString({m}If(e.{prop}, {cond})))"
    num = number_expr(prop, params)
    if m in ("sum", "avg", "min", "max"):
        return f"{m}If({num}, {cond})"
    level = {"median": 0.5, "p90": 0.9, "p95": 0.95, "p99": 0.99}[m]
    return f"quantileExactInclusiveIf({level})({num}, {cond})"


def _breakdown_key(breakdown: Breakdown | None, src: Source, params: Params, rank_cond: str) -> str:
    """`if(value IN (top N by count), value, '$other')`, or '' without a breakdown."""
    if breakdown is None:
        return "''"
    value = value_expr(breakdown.property, params)
    limit = params.bind(breakdown.limit, "UInt32")
    top = src.sql(
        f"{value} AS v",
        f"AND {rank_cond} GROUP BY v ORDER BY count() DESC, v LIMIT {limit}",
    )
    return f"if({value} IN ({top}), {value}, '{OTHER}')"


def compile_trends(
    *,
    scope: Scope,
    rng: TimeRange,
    series: list[Series],
    filters: list[FilterItem],
    breakdown: Breakdown | None,
    bucketed: bool,
) -> Compiled:
    params = Params()
    # Unique persons map each row's stored distinct-id hash through a numeric hash join to
    # the (small) alias table: cheaper than pre-aggregating per distinct id and mapping.
    persons = any(s.measure == "unique_persons" for s in series)
    src = Source(scope, params, rng, filters, persons=persons, join_persons=False)
    conds = [event_condition(s.event, s.filters, params) for s in series]
    key = _breakdown_key(breakdown, Source(scope, params, rng, filters), params, conds[0])
    any_cond = " OR ".join(conds) if "1" not in conds else "1"
    bucket = bucket_expr(rng.interval) if bucketed else "''"
    sets = "GROUP BY GROUPING SETS ((breakdown, bucket), (breakdown))"
    measures = [
        f"{_measure(s, c, src.person_hash, params)} AS m{i}"
        for i, (s, c) in enumerate(zip(series, conds, strict=True))
    ]
    sql = src.sql(
        f"{bucket} AS bucket, {key} AS breakdown, {', '.join(measures)}",
        f"AND ({any_cond}) {sets}",
    )
    return Compiled({"trends": sql}, params.values)


def compile_breakdown(*, scope: Scope, rng: TimeRange, query: BreakdownStatsQuery) -> Compiled:
    """Events and persons per top value (plus "$other"), this period and the previous one,
    in one scan over both periods."""
    params = Params()
    prev = rng.previous()
    cond = event_condition(query.event, [], params)
    src = Source(
        scope,
        params,
        None,
        query.filters,
        persons=True,
        join_persons=False,
        start=prev.start,
        end=rng.end,
        extra=[cond],
    )
    current = Source(scope, params, rng, query.filters, extra=[cond])
    value = value_expr(query.property, params)
    limit = params.bind(query.limit, "UInt32")
    top = current.sql(f"{value} AS v", f"GROUP BY v ORDER BY count() DESC, v LIMIT {limit}")
    start = params.bind(_ts(rng.start), UTC64)
    key = f"if({value} IN ({top}), {value}, '{OTHER}')"
    sql = src.sql(
        f"e.timestamp >= {start} AS cur, {key} AS breakdown, count() AS events, "
        f"uniqExact({src.person_hash}) AS persons",
        "GROUP BY cur, breakdown",
    )
    return Compiled({"breakdown": sql}, params.values)


SUMMARY_DIMENSIONS = {
    "events": "e.event",
    "browsers": "e.browser",
    "os": "e.os",
    "device_types": "e.device_type",
    "countries": "e.country",
    "pages": "if(e.event = '$pageview', e.path, '')",
    "referrers": "e.referrer_domain",
    "utm_sources": "e.utm_source",
}


def compile_summary(*, scope: Scope, rng: TimeRange, filters: list[FilterItem]) -> Compiled:
    """Totals and every value of the common dimensions, for this period (`cur` = 1) and the
    previous one (`cur` = 0), in one scan over both periods."""
    params = Params()
    prev = rng.previous()
    src = Source(
        scope,
        params,
        None,
        filters,
        persons=True,
        join_persons=False,
        start=prev.start,
        end=rng.end,
    )
    start = params.bind(_ts(rng.start), UTC64)
    dims = list(SUMMARY_DIMENSIONS.values())
    cols = ", ".join(f"{expr} AS d{i}" for i, expr in enumerate(dims))
    sets = ", ".join(["(cur)"] + [f"(cur, d{i})" for i in range(len(dims))])
    grouping = f"grouping({', '.join(f'd{i}' for i in range(len(dims)))})"
    sql = src.sql(
        f"{grouping} AS g, e.timestamp >= {start} AS cur, {cols}, count() AS events, "
        f"uniqExact({src.person_hash}) AS persons",
        f"GROUP BY GROUPING SETS ({sets})",
    )
    return Compiled({"summary": sql}, params.values)


def compile_realtime(*, scope: Scope, since: datetime) -> Compiled:
    params = Params()
    src = Source(scope, params, None, [], persons=True, start=since)
    totals = src.sql(
        f"uniqExact({src.person_hash}) AS visitors, count() AS events, "
        "countIf(e.event = '$pageview') AS pageviews"
    )
    pages = src.sql(
        f"e.path AS path, count() AS views, uniqExact({src.person_hash}) AS visitors",
        "AND e.event = '$pageview' GROUP BY path ORDER BY views DESC, path LIMIT 10",
    )
    minutes = src.sql(
        f"{bucket_expr('minute')} AS bucket, count() AS events, "
        f"uniqExact({src.person_hash}) AS visitors",
        "GROUP BY bucket ORDER BY bucket",
    )
    return Compiled({"totals": totals, "pages": pages, "minutes": minutes}, params.values)


# -- funnel ----------------------------------------------------------------------------------


# An event's time as milliseconds since the epoch (what funnels compare and subtract).
EPOCH_MS = "toUInt64(toUnixTimestamp64Milli(e.timestamp))"


def compile_funnel(*, scope: Scope, rng: TimeRange, query: FunnelQuery) -> Compiled:
    params = Params()
    conds = [event_condition(step.event, step.filters, params) for step in query.steps]
    window = params.bind(query.window_seconds * 1000, "UInt64")
    extra = [] if query.order == "strict" else ["(" + " OR ".join(conds) + ")"]
    src = Source(scope, params, rng, query.filters, persons=True, extra=extra)
    ts = EPOCH_MS
    mask = " + ".join(f"bitShiftLeft(toUInt64({c}), {i})" for i, c in enumerate(conds))
    if query.order == "any":
        # For each step event as a window start: which steps occur in [t, t + window]?
        # The person's level is the longest run of steps 1..k all present in one window.
        level = (
            "arrayMax(arrayMap(m -> bitCount(bitAnd(bitNot(m), m + 1) - 1), "
            "arrayMap(x -> arrayFold((acc, y) -> bitOr(acc, if(y.1 >= x.1 AND y.1 <= x.1 + "
            f"{window}, y.2, toUInt64(0))), evs, toUInt64(0)), evs)))"
        )
        funnel = "0"
    else:
        mode = ", 'strict_order'" if query.order == "strict" else ""
        funnel = f"windowFunnel({window}{mode})({ts}, {', '.join(conds)})"
        level = "funnel_level"
    if query.breakdown is not None:
        value = value_expr(query.breakdown.property, params)
        key = f"argMinIf({value}, e.timestamp, {conds[0]})"
    else:
        key = "''"
    if query.order == "any":
        collected = "step_mask > 0"
        evs = "arraySort(raw)"
    else:
        # The time-to-convert chain starts at the first step-1 event and then only looks
        # for later steps, so events matching step 1 alone (mask 1: typically the bulk,
        # page views) matter only as that start: collect the others, and put the start
        # back as (t0, 1) when a step-1-only event sits at t0 (sorted first, as before).
        # Only the window after t0 feeds the chain; cutting the arrays there keeps heavy
        # users cheap.
        collected = "step_mask > 1"
        evs = (
            "arraySort(arrayConcat(arrayFilter(x -> t0_only = t0, [(t0, toUInt64(1))]), "
            f"arrayFilter(y -> y.1 >= t0 AND y.1 <= t0 + {window}, raw)))"
        )
    inner = src.sql(
        f"{src.person_hash} AS person, {funnel} AS funnel_level, {key} AS breakdown, "
        f"minIf({ts}, {conds[0]}) AS t0, "
        f"groupArrayIf(({ts}, toUInt64({mask}) AS step_mask), {collected}) AS raw, "
        "minIf(" + ts + ", step_mask = 1) AS t0_only",
        "GROUP BY person",
    )
    per_person = (
        f"SELECT breakdown, {level} AS level, evs "
        f"FROM (SELECT funnel_level, breakdown, {evs} AS evs FROM ({inner}))"
    )
    return Compiled({"funnel": funnel_steps(per_person, len(conds), window)}, params.values)


def funnel_steps(per_person: str, n: int, window: str) -> str:
    """Persons per step and median times to convert, overall and per breakdown value, from
    one row per person: (breakdown, level, evs), where `evs` are the person's (ms, step
    mask) events that can follow their first step-1 event, sorted, starting with it.

    Time to convert: the greedy chain from the person's first step-1 event (the earliest
    later event of each next step), counted only where that chain fits the window."""
    chain = ["arrayFirstIndex(y -> bitTest(y.2, 0), evs) AS i1"]
    for k in range(2, n + 1):
        found = f"arrayFirstIndex(y -> bitTest(y.2, {k - 1}), arraySlice(evs, i{k - 1} + 1))"
        chain.append(f"if(i{k - 1} = 0, 0, if(({found}) AS f{k} = 0, 0, i{k - 1} + f{k})) AS i{k}")
    steps = [f"countIf(level >= {k}) AS s{k}" for k in range(1, n + 1)]
    times = []
    for k in range(2, n + 1):
        ok = f"level >= {k} AND i{k} > 0 AND evs[i{k}].1 - evs[i1].1 <= {window}"
        times.append(
            f"quantileExactInclusiveIf(0.5)(toFloat64(evs[i{k}].1 - evs[i{k - 1}].1) / 1000, "
            f"{ok}) AS t{k}"
        )
    return (
        f"SELECT grouping(breakdown) AS g, breakdown, {', '.join(steps + times)} "
        f"FROM (SELECT breakdown, level, evs, {', '.join(chain)} FROM ({per_person})) "
        "WHERE level >= 1 GROUP BY GROUPING SETS ((breakdown), ()) "
        "ORDER BY s1 DESC, breakdown"
    )


# -- retention -------------------------------------------------------------------------------

# Applied to local Dates (already in the project's zone): ClickHouse accepts a time zone
# argument only for DateTime inputs, so the zone is applied once, by toDate(..., tz).
_PERIOD_START = {
    "day": "{x}",
    "week": "toMonday({x})",
    "month": "toStartOfMonth({x})",
}


def compile_retention(
    *,
    scope: Scope,
    rng: TimeRange,
    query: RetentionQuery,
    person_days: Callable[[Params], str] | None = None,
) -> Compiled:
    """Cohorts by first occurrence and who of them came back on which day. `person_days`
    (unfiltered, any return event) gives the (day, person) rows of the range, mapped, from
    rollups where they are clean, instead of reading every event of the range."""
    params = Params()
    start_cond = event_condition(query.start_event, [], params)
    return_cond = event_condition(query.return_event, [], params)
    unit = query.interval
    first_src = Source(scope, params, None, query.filters, end=rng.end)
    act_src = Source(scope, params, rng, query.filters, extra=[return_cond])
    lo = params.bind(_ts(rng.start), UTC64)
    if query.filters:
        per_id = first_src.sql(
            "e.distinct_hash AS did, min(e.timestamp) AS first_ts",
            f"AND {start_cond} GROUP BY did",
        )
    else:
        # Unfiltered: each id's first occurrence comes from `first_seen` (one row per id and
        # event name) instead of every event ever stored. An id first seen at or after the
        # end has no occurrence before it, as with the raw `timestamp < end` filter.
        bots = "" if scope.include_bots else "AND fs.is_bot = 0 "
        named = (
            f"AND fs.event = {params.bind(query.start_event, 'String')} "
            if query.start_event is not None
            else ""
        )
        # An id first seen before the range matters only when it is linked (either side of
        # a link) to an id of the same person; the others are dropped before the mapping.
        linked = (
            " OR did IN (SELECT cityHash64(arrayJoin([distinct_id, person_id])) "
            "FROM person_aliases WHERE project_id = {project_id:UUID})"
            if scope.has_aliases
            else ""
        )
        per_id = (
            "SELECT fs.distinct_hash AS did, min(fs.first_ts) AS first_ts FROM first_seen AS fs "
            f"WHERE fs.project_id = {{project_id:UUID}} {bots}{named}GROUP BY did "
            f"HAVING first_ts < {params.bind(_ts(rng.end), UTC64)} "
            f"AND (first_ts >= {lo}{linked})"
        )
    first_from, first_person = first_src.mapped(per_id)
    if person_days is not None:
        acts = f"SELECT person, day FROM {person_days(params)}"
    else:
        act_from, act_person = act_src.mapped(
            act_src.sql("DISTINCT e.distinct_hash AS did, toDate(e.timestamp, {tz:String}) AS day")
        )
        acts = f"SELECT {act_person} AS person, i.day AS day FROM {act_from}"
    # One aggregation by person over both the mapped first occurrences (src 0) and the
    # activity days (src 1), instead of grouping each and joining them: a person belongs to a
    # cohort when their first occurrence lies in the range, with the days they were active.
    per_person = (
        "SELECT person, minIf(ts, src = 0) AS first_ts, groupUniqArrayIf(day, src = 1) AS days "
        f"FROM (SELECT {first_person} AS person, i.first_ts AS ts, toDate(0) AS day, 0 AS src "
        f"FROM {first_from} UNION ALL SELECT person, toDateTime64(0, 3, 'UTC') AS ts, day, "
        f"1 AS src FROM ({acts})) GROUP BY person "
        f"HAVING countIf(src = 0) > 0 AND first_ts >= {lo}"
    )
    last_day = params.bind(
        (rng.end - timedelta(milliseconds=1)).astimezone(rng.zone).date().isoformat(), "Date"
    )
    per_person = f"SELECT toDate(first_ts, {{tz:String}}) AS fd, days FROM ({per_person})"
    return Compiled(
        {"cohorts": retention_cohorts(per_person, unit, int(query.periods), last_day)},
        params.values,
    )


def retention_cohorts(per_person: str, unit: str, periods: int, last_day: str) -> str:
    """The cohort table from one row per person of a cohort: `fd` (their first local day)
    and `days` (the local days of the range they were active on).

    Every figure is a plain count: the cohort's size, how many could have come back 1/7/30
    days later inside the range (e*) and did (r*), and per period 1..N how many came back.
    """
    cohort = _PERIOD_START[unit].replace("{x}", "fd")
    period = f"dateDiff('{unit}', {cohort}, {_PERIOD_START[unit].replace('{x}', 'd')})"
    per_person = (
        f"SELECT toString({cohort}) AS cohort, fd, days, "
        f"arrayDistinct(arrayMap(d -> {period}, arrayFilter(d -> d >= fd, days))) AS periods "
        f"FROM ({per_person})"
    )
    eligible = [f"countIf(fd + {n} <= {last_day}) AS e{n}" for n in (1, 7, 30)]
    returned = [f"countIf(has(days, fd + {n})) AS r{n}" for n in (1, 7, 30)]
    return (
        f"SELECT cohort, count() AS persons, {', '.join(eligible + returned)}, "
        f"sumForEach(arrayMap(k -> toUInt64(has(periods, k)), range(1, {periods + 1}))) "
        f"AS returned FROM ({per_person}) GROUP BY cohort ORDER BY cohort"
    )


# -- active users ----------------------------------------------------------------------------


def compile_active_users(
    *, scope: Scope, rng: TimeRange, filters: list[FilterItem], lookback_start: datetime
) -> Compiled:
    """DAU plus coverage deltas for 7- and 30-day windows (summed into WAU/MAU in Python).

    A person active on day a counts for WAU on days a..a+6. Per person, consecutive
    coverage intervals are merged, so each contributes +1 where coverage starts and -1
    where it ends; a running sum over days then gives the exact WAU/MAU.
    """
    params = Params()
    src = Source(scope, params, rng, filters, start=lookback_start)
    per_id = src.sql(
        "e.distinct_hash AS did, groupUniqArray(toDate(e.timestamp, {tz:String})) AS ds",
        "GROUP BY did",
    )
    if scope.has_aliases:
        from_, person = src.mapped(per_id)
        days = (
            f"SELECT {person} AS person, arraySort(arrayDistinct(arrayFlatten(groupArray(i.ds)))) "
            f"AS days FROM {from_} GROUP BY person"
        )
    else:
        days = f"SELECT did AS person, arraySort(ds) AS days FROM ({per_id})"

    def deltas(kind: str, width: int) -> str:
        starts = (
            f"arrayMap(x -> ('{kind}', x, 1), arrayFilter((x, i) -> i = 1 OR "
            f"toInt32(x) - toInt32(days[i - 1]) > {width}, days, arrayEnumerate(days)))"
        )
        ends = (
            f"arrayMap(x -> ('{kind}', x + {width}, -1), arrayFilter((x, i) -> i = length(days) "
            f"OR toInt32(days[i + 1]) - toInt32(x) > {width}, days, arrayEnumerate(days)))"
        )
        return f"{starts}, {ends}"

    points = f"arrayConcat(arrayMap(x -> ('d', x, 1), days), {deltas('w', 7)}, {deltas('m', 30)})"
    sql = (
        f"SELECT p.1 AS kind, toString(p.2) AS day, sum(p.3) AS delta FROM ({days}) "
        f"ARRAY JOIN {points} AS p GROUP BY kind, day ORDER BY day, kind"
    )
    return Compiled({"active": sql}, params.values)


# -- paths -----------------------------------------------------------------------------------


def compile_paths(*, scope: Scope, rng: TimeRange, query: PathsQuery) -> Compiled:
    params = Params()
    src = Source(scope, params, rng, query.filters)
    target = params.bind(query.event, "String")
    depth = int(query.depth)
    from_, person = src.mapped(
        src.sql(
            "e.distinct_hash AS did, groupArray((e.timestamp, toString(e.event))) AS evs",
            "GROUP BY did",
        )
    )
    per_person = (
        f"SELECT {person} AS person, arrayMap(x -> x.2, arraySort(x -> x.1, "
        f"arrayFlatten(groupArray(i.evs)))) AS evs FROM {from_} GROUP BY person"
    )
    if query.direction == "next":
        seq = f"arraySlice(evs, i + 1, {depth})"
    else:
        seq = (
            f"arrayReverse(arraySlice(evs, greatest(1, i - {depth}), i - greatest(1, i - {depth})))"
        )
    occurrences = (
        f"SELECT {seq} AS seq FROM ({per_person}) "
        f"ARRAY JOIN arrayFilter(i -> evs[i] = {target}, arrayEnumerate(evs)) AS i"
    )
    limit = params.bind(query.limit, "UInt32")
    paths = (
        f"SELECT seq, count() AS n FROM ({occurrences}) WHERE length(seq) > 0 "
        f"GROUP BY seq ORDER BY n DESC, seq LIMIT {limit}"
    )
    steps = (
        f"SELECT step, name, n FROM (SELECT step, name, count() AS n FROM ({occurrences}) "
        "ARRAY JOIN seq AS name, arrayEnumerate(seq) AS step GROUP BY step, name) "
        f"ORDER BY step, n DESC, name LIMIT {limit} BY step"
    )
    total = f"SELECT count() AS n FROM ({occurrences})"
    return Compiled({"paths": paths, "steps": steps, "total": total}, params.values)


# -- one person ------------------------------------------------------------------------------


def compile_person_ids(*, scope: Scope, distinct_id: str) -> Compiled:
    """The canonical person of a distinct id and every distinct id mapped to it."""
    params = Params({"project_id": scope.project_id})
    did = params.bind(distinct_id, "String")
    person = (
        "SELECT if(count() = 0, "
        f"{did}, argMax(person_id, updated_at)) FROM person_aliases "
        f"WHERE project_id = {{project_id:UUID}} AND distinct_id = {did}"
    )
    ids = (
        "SELECT distinct_id FROM person_aliases WHERE project_id = {project_id:UUID} "
        f"GROUP BY distinct_id HAVING argMax(person_id, updated_at) = ({person}) "
        "ORDER BY distinct_id LIMIT 1000"
    )
    return Compiled({"person": person, "ids": ids}, params.values)


def compile_person(*, scope: Scope, distinct_ids: list[str], limit: int) -> Compiled:
    params = Params()
    ids = params.bind(distinct_ids, "Array(String)")
    src = Source(scope, params, None, [], include_bots=True, extra=[f"e.distinct_id IN {ids}"])
    profile = src.sql(
        "min(e.timestamp) AS first_seen, max(e.timestamp) AS last_seen, count() AS total_events, "
        "uniqExact(cityHash64(e.session_id)) AS sessions"
    )
    traits = src.sql(
        "e.properties AS properties",
        "AND e.event = '$identify' ORDER BY e.timestamp ASC LIMIT 500",
    )
    recent = src.sql(
        _event_columns(),
        f"ORDER BY e.timestamp DESC, e.event_id DESC LIMIT {params.bind(limit, 'UInt32')}",
    )
    return Compiled({"profile": profile, "traits": traits, "recent": recent}, params.values)


# -- activity feed ---------------------------------------------------------------------------


def _event_columns() -> str:
    cols = []
    for name in EVENT_COLUMNS:
        if name == "tx_value":
            cols.append("toString(e.tx_value) AS tx_value")
        elif name == "timestamp" or name == "received_at":
            cols.append(f"e.{name} AS {name}")
        else:
            cols.append(f"e.{name} AS {name}")
    return ", ".join(cols)


def compile_events(
    *,
    scope: Scope,
    rng: TimeRange,
    query: EventsQuery,
    cursor: tuple[datetime, str] | None,
) -> Compiled:
    params = Params()
    extra = []
    if query.event is not None:
        extra.append(f"e.event = {params.bind(query.event, 'String')}")
    if query.distinct_id is not None:
        extra.append(f"e.distinct_id = {params.bind(query.distinct_id, 'String')}")
    if cursor is not None:
        ts = params.bind(_ts(cursor[0]), UTC64)
        eid = params.bind(cursor[1], "UUID")
        extra.append(f"(e.timestamp, e.event_id) < ({ts}, {eid})")
    src = Source(scope, params, rng, query.filters, extra=extra)
    limit = params.bind(query.limit + 1, "UInt32")
    sql = src.sql(_event_columns(), f"ORDER BY e.timestamp DESC, e.event_id DESC LIMIT {limit}")
    return Compiled({"events": sql}, params.values)


def compile_event_by_id(*, scope: Scope, event_id: str) -> Compiled:
    params = Params()
    eid = params.bind(event_id, "UUID")
    src = Source(scope, params, None, [], include_bots=True, extra=[f"e.event_id = {eid}"])
    return Compiled({"event": src.sql(_event_columns(), "LIMIT 1")}, params.values)


def compile_live(
    *, scope: Scope, after: datetime, limit: int, exclude: Sequence[str] = ()
) -> Compiled:
    """Events received after a point in time (for the live stream), oldest first, leaving
    out the ids in `exclude` (already sent); no dedup needed."""
    params = Params({"project_id": scope.project_id})
    after_p = params.bind(_ts(after), UTC64)
    skip = f"AND e.event_id NOT IN {params.bind(list(exclude), 'Array(UUID)')} " if exclude else ""
    sql = (
        f"SELECT {_event_columns()} FROM events AS e WHERE e.project_id = {{project_id:UUID}} "
        f"AND toDate(e.timestamp) >= toDate({after_p}) - 2 AND e.received_at > {after_p} "
        f"{skip}ORDER BY e.received_at ASC, e.event_id ASC LIMIT {params.bind(limit, 'UInt32')}"
    )
    return Compiled({"live": sql}, params.values, settings={})


def compile_first_event(*, scope: Scope) -> Compiled:
    params = Params({"project_id": scope.project_id})
    sql = "SELECT min(timestamp), count() FROM events WHERE project_id = {project_id:UUID}"
    return Compiled({"first": sql}, params.values, settings={})


def compile_has_aliases(*, project_id: str) -> Compiled:
    params = Params({"project_id": project_id})
    sql = "SELECT count() > 0 FROM person_aliases WHERE project_id = {project_id:UUID} LIMIT 1"
    return Compiled({"has": sql}, params.values, settings={})


# -- API metrics -----------------------------------------------------------------------------

API_METRICS = (
    "count() AS request_count, countIf(e.http_status >= 400) AS error_count, "
    "countIf(e.http_status >= 500) AS server_error_count, avg(e.duration_ms) AS avg, "
    "quantilesExactInclusive(0.5, 0.95, 0.99)(e.duration_ms) AS q, max(e.duration_ms) AS max"
)
API_SORT = {
    "count": "request_count DESC",
    "error_rate": "error_count / request_count DESC, request_count DESC",
    "server_error_rate": "server_error_count / request_count DESC, request_count DESC",
    "avg": "avg DESC",
    "p50": "q[1] DESC",
    "p95": "q[2] DESC",
    "p99": "q[3] DESC",
    "max": "max DESC",
    "route": "route ASC, method ASC",
}


def compile_api_metrics(*, scope: Scope, rng: TimeRange, query: ApiMetricsQuery) -> Compiled:
    params = Params()
    src = Source(
        scope,
        params,
        rng,
        query.filters,
        # Every `api` event is named `$api_request` (ingest/event.py), so the event name alone
        # selects them, and the sort key (project, day, event) then reads only their granules.
        extra=["e.event = '$api_request'"],
    )
    summary = src.sql(API_METRICS)
    endpoints = src.sql(
        f"e.http_method AS method, e.http_route AS route, {API_METRICS}",
        f"GROUP BY method, route ORDER BY {API_SORT[query.sort]} "
        f"LIMIT {params.bind(query.limit, 'UInt32')}",
    )
    series = src.sql(
        f"{bucket_expr(rng.interval)} AS bucket, {API_METRICS}", "GROUP BY bucket ORDER BY bucket"
    )
    return Compiled({"summary": summary, "endpoints": endpoints, "series": series}, params.values)


# -- Web3 ------------------------------------------------------------------------------------


def compile_web3(*, scope: Scope, rng: TimeRange, query: Web3Query) -> Compiled:
    params = Params()
    extra = ["(e.type = 'web3' OR e.tx_hash != '' OR e.wallet_address != '')"]
    if query.wallet is not None:
        extra.append(f"lower(e.wallet_address) = lower({params.bind(query.wallet, 'String')})")
    src = Source(scope, params, rng, query.filters, persons=True, by_hash=False, extra=extra)
    ok = params.bind(list(TX_SUCCESS), "Array(String)")
    bad = params.bind(list(TX_FAILED), "Array(String)")
    tx = "e.tx_hash != ''"
    wallet = "lower(e.wallet_address)"
    limit = params.bind(query.limit, "UInt32")
    # One row per transaction: a dapp reports one as submitted, then confirmed or failed,
    # each event with the same hash and value; counted once, with its last status, from
    # the bucket it was first seen in.
    txs = src.sql(
        "e.chain_id AS chain_id, lower(e.tx_hash) AS hash, "
        "argMaxIf(lower(e.tx_status), e.timestamp, e.tx_status != '') AS status, "
        "max(e.tx_value) AS value, max(e.token_symbol) AS token, "
        f"max(lower(e.contract_address)) AS contract, max({wallet}) AS wallet, "
        f"min({bucket_expr(rng.interval)}) AS bucket",
        f"AND {tx} GROUP BY chain_id, hash",
    )
    summary = src.sql(
        f"uniqExactIf(cityHash64({wallet}), {wallet} != '') AS unique_wallets, "
        f"uniqExactIf(cityHash64({src.person}), e.wallet_address != '') AS unique_persons"
    )
    transactions = (
        f"SELECT count() AS tx_count, countIf(has({ok}, status)) AS success_count, "
        f"countIf(has({bad}, status)) AS failed_count FROM ({txs})"
    )
    volume = (
        "SELECT chain_id, token, count() AS tx_count, toString(sum(value)) AS volume "
        f"FROM ({txs}) GROUP BY chain_id, token ORDER BY sum(value) DESC, chain_id, token"
    )
    contracts = (
        "SELECT contract, count() AS tx_count, uniqExact(cityHash64(wallet)) AS wallets, "
        f"toString(sum(value)) AS volume FROM ({txs}) WHERE contract != '' "
        f"GROUP BY contract ORDER BY tx_count DESC, contract LIMIT {limit}"
    )
    wallets = src.sql(
        f"lower(e.wallet_address) AS wallet, groupUniqArray(10)({src.person}) AS persons, "
        f"count() AS events, uniqExactIf(lower(e.tx_hash), {tx}) AS tx_count, "
        "min(e.timestamp) AS first_seen, max(e.timestamp) AS last_seen",
        f"AND e.wallet_address != '' GROUP BY wallet ORDER BY events DESC, wallet LIMIT {limit}",
    )
    series = src.sql(
        f"{bucket_expr(rng.interval)} AS bucket, "
        f"uniqExactIf(cityHash64({wallet}), {wallet} != '') AS unique_wallets",
        "GROUP BY bucket ORDER BY bucket",
    )
    tx_series = (
        f"SELECT bucket, count() AS tx_count, countIf(has({ok}, status)) AS success_count "
        f"FROM ({txs}) GROUP BY bucket ORDER BY bucket"
    )
    return Compiled(
        {
            "summary": summary,
            "transactions": transactions,
            "volume": volume,
            "contracts": contracts,
            "wallets": wallets,
            "series": series,
            "tx_series": tx_series,
        },
        params.values,
    )


# -- visits (sessions) -----------------------------------------------------------------------


def compile_sessions(*, scope: Scope, rng: TimeRange, filters: list[FilterItem]) -> Compiled:
    """Visits, bounces and visit length for this period (`cur` = 1) and the previous one.

    A visit is a session id with at least one page view; it belongs to the period in which
    it started. A bounce is a visit with exactly one page view. Its length runs from its
    first to its last event of any kind.
    """
    params = Params()
    prev = rng.previous()
    src = Source(
        scope, params, None, filters, start=prev.start, end=rng.end, extra=["e.session_id != ''"]
    )
    start = params.bind(_ts(rng.start), UTC64)
    per_visit = src.sql(
        "e.session_id AS sid, min(e.timestamp) AS first_ts, max(e.timestamp) AS last_ts, "
        "countIf(e.event = '$pageview') AS views",
        "GROUP BY sid HAVING views > 0",
    )
    sql = (
        f"SELECT first_ts >= {start} AS cur, count() AS visits, countIf(views = 1) AS bounces, "
        "sum(views) AS pageviews, "
        "avg(dateDiff('millisecond', first_ts, last_ts)) / 1000 AS avg_duration_seconds "
        f"FROM ({per_visit}) GROUP BY cur"
    )
    return Compiled({"sessions": sql}, params.values)
