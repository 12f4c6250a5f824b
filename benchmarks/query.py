"""Query benchmark: Sextant (chDB through its own compiler and service) vs PostgreSQL.

Loads N events (default 10,000,000) into a fresh embedded event store in a temp dir and
the same rows into a throwaway PostgreSQL database (a classic row table with indexes on
(project_id, timestamp), (project_id, event), (project_id, distinct_id)), then runs each
report on both and prints p50/p95 per report per engine and the ratio.

    .venv/bin/python benchmarks/query.py --events 1000000
    .venv/bin/python benchmarks/query.py            # 10M, takes a few minutes to load

Rows come from the demo data set (`sextant.ingest.demo.generate_rows`, 90 days), or with
`--source synthetic` from the vectorised generator in `benchmarks/_rows.py`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _rows import COLUMNS, PG_TABLE, tsv_chunks

from sextant.analytics.rollups import RollupBuilder, RollupScheduler
from sextant.analytics.schemas import (
    ActiveUsersQuery,
    ApiMetricsQuery,
    BreakdownStatsQuery,
    FunnelQuery,
    RetentionQuery,
    Series,
    SummaryQuery,
    TrendsQuery,
)
from sextant.analytics.service import AnalyticsService
from sextant.core.cache import MemoryCache
from sextant.core.eventstore import EventStore
from sextant.migrations.event_schema import migrate
from sextant.projects.context import ProjectContext

PROJECT = "5e7a11a5-0000-4000-8000-000000000001"
TZ = "Europe/Berlin"


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    k = (len(ordered) - 1) * pct
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def timed(fn: Callable[[], Any], repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        out.append((time.perf_counter() - start) * 1000)
    return out


def load(
    store: EventStore, pg: psycopg.Connection[Any], n: int, end: datetime, source: str
) -> None:
    started = time.perf_counter()
    ch_time = pg_time = 0.0
    copy_sql = f"COPY events ({', '.join(COLUMNS)}) FROM STDIN"
    with pg.cursor() as cur:
        if source == "demo":
            from sextant.ingest import demo

            picks = [demo.COL[name] for name in COLUMNS]
            for batch in demo.generate_rows(PROJECT, n, end=end, batch_size=100_000):
                t = time.perf_counter()
                if batch.aliases:
                    store.insert_raw(
                        "person_aliases",
                        demo.alias_rows(batch.aliases),
                        fmt="JSONCompactEachRow",
                        column_names=demo.ALIAS_COLUMNS,
                    )
                store.insert_raw(
                    "events",
                    demo.json_compact_rows(batch.events),
                    fmt="JSONCompactEachRow",
                    column_names=demo.EVENT_COLUMNS,
                    settings={"date_time_input_format": "basic", "optimize_on_insert": 0},
                )
                ch_time += time.perf_counter() - t
                t = time.perf_counter()
                with cur.copy(copy_sql) as copy:
                    for row in batch.events:
                        copy.write_row([row[i] for i in picks])
                pg_time += time.perf_counter() - t
        else:
            for chunk in tsv_chunks(n, end=end, project_id=PROJECT):
                t = time.perf_counter()
                store.insert_raw("events", chunk.events, fmt="TabSeparated", column_names=COLUMNS)
                if chunk.aliases:
                    store.insert_raw(
                        "person_aliases",
                        chunk.aliases,
                        fmt="TabSeparated",
                        column_names=["project_id", "distinct_id", "person_id", "updated_at"],
                    )
                ch_time += time.perf_counter() - t
                t = time.perf_counter()
                with cur.copy(copy_sql) as copy:
                    copy.write(chunk.events)
                pg_time += time.perf_counter() - t
    pg.commit()
    t = time.perf_counter()
    with pg.cursor() as cur:
        cur.execute("CREATE INDEX ON events (project_id, timestamp)")
        cur.execute("CREATE INDEX ON events (project_id, event)")
        cur.execute("CREATE INDEX ON events (project_id, distinct_id)")
        cur.execute("ANALYZE events")
    pg.commit()
    pg_time += time.perf_counter() - t
    parts = store.query(
        "SELECT count() FROM system.parts WHERE active AND table = 'events'"
    ).scalar()
    print(
        f"loaded {n:,} events in {time.perf_counter() - started:.0f}s "
        f"(chDB {ch_time:.0f}s, {parts} parts; PostgreSQL incl. indexes {pg_time:.0f}s)"
    )


def sextant_reports(days: int) -> dict[str, Any]:
    rng = {"date_from": f"-{days}d"}
    return {
        "summary": SummaryQuery(**rng),
        "time series": TrendsQuery(
            kind="trends",
            interval="day",
            series=[Series(measure="total"), Series(measure="unique_persons")],
            **rng,
        ),
        "breakdown": BreakdownStatsQuery(property="browser", **rng),
        "top pages": BreakdownStatsQuery(property="path", event="$pageview", **rng),
        "funnel": FunnelQuery(
            kind="funnel",
            steps=[{"event": "$pageview"}, {"event": "signup"}, {"event": "purchase"}],  # type: ignore[list-item]
            **rng,
        ),
        "retention": RetentionQuery(kind="retention", interval="day", periods=8, **rng),
        "DAU": ActiveUsersQuery(kind="active_users", **rng),
        "API p95": ApiMetricsQuery(kind="api_metrics", interval="day", **rng),
    }


def pg_reports(start: datetime, end: datetime) -> dict[str, list[str]]:
    prev = start - (end - start)
    w = (
        f"project_id = '{PROJECT}' AND timestamp >= '{start.isoformat()}' "
        f"AND timestamp < '{end.isoformat()}' AND NOT is_bot"
    )
    wp = (
        f"project_id = '{PROJECT}' AND timestamp >= '{prev.isoformat()}' "
        f"AND timestamp < '{start.isoformat()}' AND NOT is_bot"
    )
    summary = []
    for where in (w, wp):
        summary.append(f"SELECT count(*), count(DISTINCT distinct_id) FROM events WHERE {where}")
        for dim in (
            "event",
            "browser",
            "os",
            "device_type",
            "country",
            "referrer_domain",
            "utm_source",
        ):
            summary.append(
                f"SELECT {dim}, count(*), count(DISTINCT distinct_id) FROM events WHERE {where} "
                f"GROUP BY 1 ORDER BY 2 DESC LIMIT 10"
            )
        summary.append(
            f"SELECT path, count(*), count(DISTINCT distinct_id) FROM events WHERE {where} "
            "AND event = '$pageview' GROUP BY 1 ORDER BY 2 DESC LIMIT 10"
        )
    day = f"date_trunc('day', timestamp AT TIME ZONE '{TZ}')"
    return {
        "summary": summary,
        "time series": [
            f"SELECT {day}, count(*), count(DISTINCT distinct_id) FROM events WHERE {w} "
            "GROUP BY 1 ORDER BY 1"
        ],
        "breakdown": [
            f"SELECT browser, count(*), count(DISTINCT distinct_id) FROM events WHERE {where} "
            "GROUP BY 1 ORDER BY 2 DESC LIMIT 10"
            for where in (w, wp)
        ],
        "top pages": [
            f"SELECT path, count(*), count(DISTINCT distinct_id) FROM events WHERE {where} "
            "AND event = '$pageview' GROUP BY 1 ORDER BY 2 DESC LIMIT 10"
            for where in (w, wp)
        ],
        "funnel": [
            f"""WITH s1 AS (SELECT distinct_id, min(timestamp) AS t1 FROM events
                 WHERE {w} AND event = '$pageview' GROUP BY 1),
            s2 AS (SELECT s1.distinct_id, s1.t1, min(e.timestamp) AS t2 FROM s1 JOIN events e
                 ON e.project_id = '{PROJECT}' AND e.distinct_id = s1.distinct_id
                 AND e.event = 'signup' AND e.timestamp > s1.t1
                 AND e.timestamp <= s1.t1 + interval '1 day' GROUP BY 1, 2),
            s3 AS (SELECT s2.distinct_id FROM s2 JOIN events e
                 ON e.project_id = '{PROJECT}' AND e.distinct_id = s2.distinct_id
                 AND e.event = 'purchase' AND e.timestamp > s2.t2
                 AND e.timestamp <= s2.t1 + interval '1 day' GROUP BY 1)
            SELECT (SELECT count(*) FROM s1), (SELECT count(*) FROM s2),
                   (SELECT count(*) FROM s3)"""
        ],
        "retention": [
            f"""WITH firsts AS (SELECT distinct_id,
                   min(timestamp AT TIME ZONE '{TZ}')::date AS d0 FROM events
                 WHERE project_id = '{PROJECT}' AND timestamp < '{end.isoformat()}'
                   AND NOT is_bot GROUP BY 1
                 HAVING min(timestamp) >= '{start.isoformat()}'),
            acts AS (SELECT DISTINCT distinct_id, (timestamp AT TIME ZONE '{TZ}')::date AS d
                 FROM events WHERE {w})
            SELECT f.d0, a.d - f.d0 AS period, count(DISTINCT f.distinct_id)
            FROM firsts f JOIN acts a USING (distinct_id)
            WHERE a.d - f.d0 BETWEEN 0 AND 8 GROUP BY 1, 2 ORDER BY 1, 2"""
        ],
        "DAU": [
            f"SELECT {day}, count(DISTINCT distinct_id) FROM events WHERE {w} GROUP BY 1 ORDER BY 1"
        ],
        "API p95": [
            f"""SELECT http_method, http_route, count(*),
                count(*) FILTER (WHERE http_status >= 400),
                avg(duration_ms), percentile_cont(0.95) WITHIN GROUP (ORDER BY duration_ms)
            FROM events WHERE {w} AND type = 'api' GROUP BY 1, 2 ORDER BY 3 DESC"""
        ],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument(
        "--source",
        choices=["demo", "synthetic"],
        default="demo",
        help="demo: sextant.ingest.demo.generate_rows (default); synthetic: benchmarks/_rows.py "
        "(vectorised, faster to generate)",
    )
    parser.add_argument("--days", type=int, default=30, help="report range (data spans 90)")
    parser.add_argument("--repeat", type=int, default=20, help="runs per report (Sextant)")
    parser.add_argument("--pg-repeat", type=int, default=3, help="runs per report (PostgreSQL)")
    parser.add_argument("--pg-dsn", default="host=127.0.0.1 port=5432 user=postgres")
    parser.add_argument("--only", default="", help="comma-separated report names")
    parser.add_argument(
        "--no-optimize",
        action="store_true",
        help="query the freshly loaded parts (default: merge them first, as a server "
        "running for a while would have)",
    )
    parser.add_argument("--final-cost", action="store_true", help="time FINAL vs no FINAL")
    parser.add_argument(
        "--no-rollups",
        action="store_true",
        help="read raw events only (what a filtered report does, and Sextant before rollups)",
    )
    parser.add_argument(
        "--keep",
        metavar="DIR",
        help="keep the loaded data (chDB store in DIR, PostgreSQL database named after it) "
        "and reuse it on the next run with the same DIR: compare code changes on one data set",
    )
    args = parser.parse_args()

    admin = psycopg.connect(args.pg_dsn + " dbname=postgres", autocommit=True)
    end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    tmp = None
    reuse = False
    if args.keep:
        keep = Path(args.keep).resolve()
        keep.mkdir(parents=True, exist_ok=True)
        db_name = "sextant_bench_keep_" + uuid.uuid5(uuid.NAMESPACE_URL, str(keep)).hex[:8]
        events_dir = keep / "events"
        stamp = keep / "loaded-until"
        reuse = stamp.exists()
        if reuse:
            end = datetime.fromisoformat(stamp.read_text().strip())
    else:
        db_name = f"sextant_bench_{uuid.uuid4().hex[:8]}"
        tmp = tempfile.TemporaryDirectory(prefix="sextant-bench-")
        events_dir = Path(tmp.name) / "events"
    if not reuse:
        admin.execute(f"DROP DATABASE IF EXISTS {db_name}")
        admin.execute(f"CREATE DATABASE {db_name}")
    try:
        store = EventStore(f"chdb://{events_dir}")
        migrate(store)
        with psycopg.connect(args.pg_dsn + f" dbname={db_name}") as pg:
            if reuse:
                print(
                    f"reusing the data loaded into {args.keep} (events until {end:%Y-%m-%dT%H:%MZ})"
                )
            else:
                pg.execute(PG_TABLE)
                pg.commit()
                load(store, pg, args.events, end, args.source)
            if args.final_cost:
                final_cost(store, args, end, "before background merges")
            if not args.no_optimize and not reuse:
                t = time.perf_counter()
                store.command("OPTIMIZE TABLE events FINAL")
                print(f"merged parts (OPTIMIZE FINAL) in {time.perf_counter() - t:.0f}s")
            if args.final_cost:
                final_cost(store, args, end, "after merges")
            builder = RollupBuilder(store, quiet_seconds=0, clock=lambda: datetime.now(UTC))
            if not args.no_rollups:
                # What the server's background builder does once the import has gone quiet.
                built = builder.build(PROJECT, TZ)
                print(
                    f"built daily rollups in {built.seconds:.1f}s "
                    f"({built.days} days, {built.rows:,} rows)"
                )
            if args.keep and not reuse:
                stamp.write_text(end.isoformat())
            run(store, pg, args, end, builder)
        store.close()
    finally:
        if tmp is not None:
            tmp.cleanup()
            admin.execute(f"DROP DATABASE IF EXISTS {db_name}")
        admin.close()


def final_cost(store: EventStore, args: argparse.Namespace, end: datetime, when: str) -> None:
    """What reading with FINAL (dedup of retried messages) costs on the time series."""
    from sextant.analytics import queries
    from sextant.analytics.timerange import resolve

    rng = resolve(date_from=f"-{args.days}d", date_to=None, tz_name=TZ, interval="day", now=end)
    scope = queries.Scope(PROJECT, TZ, False, False)
    compiled = queries.compile_trends(
        scope=scope,
        rng=rng,
        series=[Series(measure="total"), Series(measure="unique_persons")],
        filters=[],
        breakdown=None,
        bucketed=True,
    )
    sql = compiled.statements["trends"]
    parts = store.query("SELECT count() FROM system.parts WHERE active AND table = 'events'")
    for label, text in (("FINAL", sql), ("no FINAL", sql.replace(" FINAL", ""))):
        store.query(text, compiled.params, settings=compiled.settings)
        times = timed(
            lambda t=text: store.query(t, compiled.params, settings=compiled.settings),
            args.repeat,
        )
        print(
            f"time series {label:<9} {when} ({parts.scalar()} parts): "
            f"p50 {percentile(times, 0.5):.1f} ms, p95 {percentile(times, 0.95):.1f} ms"
        )


def run(
    store: EventStore,
    pg: psycopg.Connection[Any],
    args: argparse.Namespace,
    end: datetime,
    builder: RollupBuilder,
) -> None:
    ctx = ProjectContext(
        project_id=PROJECT,
        org_id=str(uuid.uuid4()),
        name="bench",
        timezone=TZ,
        retention_days=3650,
        store_raw_ip=False,
    )
    service = AnalyticsService(
        store=store,
        cache=MemoryCache(),
        ttl_seconds=3600,
        clock=lambda: end,
        use_rollups=not args.no_rollups,
        scheduler=RollupScheduler(builder),  # not started: shares the builder's link marks
    )
    loop = asyncio.new_event_loop()
    ours = sextant_reports(args.days)
    local_end = end.astimezone(__import__("zoneinfo").ZoneInfo(TZ))
    start = (local_end.replace(hour=0) - timedelta(days=args.days - 1)).astimezone(UTC)
    theirs = pg_reports(start, end)
    only = {s.strip() for s in args.only.split(",") if s.strip()}
    load1, load5, load15 = os.getloadavg()
    print(
        f"\nload average before the runs: {load1:.2f} {load5:.2f} {load15:.2f} "
        f"({os.cpu_count()} CPUs; other processes share them)"
    )
    print(
        f"{'report':<12} {'uncached p50':>12} {'p95':>8} {'cached p50':>11} {'p95':>7} "
        f"{'PostgreSQL p50':>15} {'p95':>9} {'speed-up (p95)':>15} {'first run':>10}"
    )
    for name, query in ours.items():
        if only and name not in only:
            continue
        # The first run also reads what a process holds in memory afterwards (the funnel's
        # person-event rows): printed apart, not in the percentiles.
        first = timed(lambda q=query: service.execute(ctx, q), 1)[0]
        uncached = timed(lambda q=query: service.execute(ctx, q), args.repeat)
        loop.run_until_complete(service.run(ctx, query, fresh=True))
        cached = timed(lambda q=query: loop.run_until_complete(service.run(ctx, q)), args.repeat)

        def pg_run(statements: list[str] = theirs[name]) -> None:
            with pg.cursor() as cur:
                for sql in statements:
                    cur.execute(sql)
                    cur.fetchall()

        pg_times = timed(pg_run, args.pg_repeat)
        u50, u95 = percentile(uncached, 0.5), percentile(uncached, 0.95)
        c50, c95 = percentile(cached, 0.5), percentile(cached, 0.95)
        p50, p95 = percentile(pg_times, 0.5), percentile(pg_times, 0.95)
        print(
            f"{name:<12} {u50:>10.1f}ms {u95:>6.1f}ms {c50:>9.2f}ms {c95:>5.2f}ms "
            f"{p50:>13.0f}ms {p95:>7.0f}ms {p95 / u95:>14.1f}x {first:>8.1f}ms"
        )
    load1, load5, load15 = os.getloadavg()
    print(f"load average after the runs: {load1:.2f} {load5:.2f} {load15:.2f}")
    loop.close()
    _ = statistics  # keep import for callers extending the report


if __name__ == "__main__":
    main()
