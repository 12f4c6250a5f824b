"""Analytics endpoints: the query model and the convenience reports built on it."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, TypeVar

import orjson
from fastapi import APIRouter, Body, Depends, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, TypeAdapter, ValidationError
from starlette.concurrency import run_in_threadpool

from sextant.analytics.schemas import (
    AnalyticsQuery,
    ApiMetricsQuery,
    ApiSort,
    BreakdownStatsQuery,
    EventsQuery,
    FilterItem,
    Interval,
    PersonQuery,
    RealtimeQuery,
    RetentionQuery,
    Series,
    SessionsQuery,
    SummaryQuery,
    TrendsQuery,
    Web3Query,
)
from sextant.analytics.service import AnalyticsService, event_row
from sextant.config import Settings
from sextant.core.errors import Unprocessable, validation_details
from sextant.projects.dependencies import ProjectReadDep

router = APIRouter(prefix="/api/v1/projects/{project_id}", tags=["analytics"])

M = TypeVar("M", bound=BaseModel)
_FILTERS = TypeAdapter(list[FilterItem])
_QUERY = TypeAdapter(AnalyticsQuery)

# Friendly names for `stats/breakdown/{dimension}`.
DIMENSIONS = {
    "events": "event",
    "browsers": "browser",
    "os": "os",
    "device_types": "device_type",
    "devices": "device_type",
    "countries": "country",
    "regions": "region",
    "cities": "city",
    "pages": "path",
    "page": "path",
    "referrers": "referrer_domain",
    "referrer": "referrer_domain",
    "utm_sources": "utm_source",
    "utm_mediums": "utm_medium",
    "utm_campaigns": "utm_campaign",
}


def get_analytics(request: Request) -> AnalyticsService:
    service: AnalyticsService = request.app.state.analytics
    return service


AnalyticsDep = Annotated[AnalyticsService, Depends(get_analytics)]
Fresh = Annotated[bool, Query(description="bypass the result cache")]
DateFrom = Annotated[
    str | None, Query(description="ISO date/datetime or -24h, -7d, -30d, mtd, ytd, all")
]
DateTo = Annotated[str | None, Query(description="ISO date/datetime (default: now)")]
FiltersParam = Annotated[
    str | None,
    Query(description='JSON list of filters, e.g. [{"property":"country","op":"eq","value":"DE"}]'),
]


def _filters(raw: str | None) -> list[FilterItem]:
    if not raw:
        return []
    try:
        return _FILTERS.validate_json(raw)
    except ValidationError as exc:
        details = [
            {**d, "field": "query.filters" + (f".{d['field']}" if d["field"] else "")}
            for d in validation_details(exc.errors())
        ]
        first = details[0]
        raise Unprocessable(f"{first['field']}: {first['message']}", details=details) from None


@dataclass(frozen=True, slots=True)
class Window:
    """The date range and filters every report endpoint takes."""

    date_from: str | None
    date_to: str | None
    filters: list[FilterItem]

    @property
    def values(self) -> dict[str, Any]:
        return {"date_from": self.date_from, "date_to": self.date_to, "filters": self.filters}


def get_window(
    date_from: DateFrom = None, date_to: DateTo = None, filters: FiltersParam = None
) -> Window:
    return Window(date_from, date_to, _filters(filters))


WindowDep = Annotated[Window, Depends(get_window)]


def _build(model: type[M], **values: Any) -> M:
    """Build a query model from GET parameters; errors name the query parameter."""
    try:
        return model.model_validate({k: v for k, v in values.items() if v is not None})
    except ValidationError as exc:
        details = [{**d, "field": "query." + d["field"]} for d in validation_details(exc.errors())]
        first = details[0]
        raise Unprocessable(f"{first['field']}: {first['message']}", details=details) from None


@router.post("/query")
async def run_query(
    ctx: ProjectReadDep,
    service: AnalyticsDep,
    query: Annotated[AnalyticsQuery, Body()],
    fresh: Fresh = False,
) -> dict[str, Any]:
    """Answer a declarative query (`kind`: trends, funnel, retention, active_users, paths,
    person, events, api_metrics, web3)."""
    return await service.run(ctx, query, fresh=fresh)


@router.get("/stats/summary")
async def stats_summary(
    ctx: ProjectReadDep,
    service: AnalyticsDep,
    window: WindowDep,
    include_bots: bool = False,
    limit: int = 10,
    fresh: Fresh = False,
) -> dict[str, Any]:
    """Totals, top values of the common dimensions, each with the previous period's value."""
    query = _build(
        SummaryQuery,
        **window.values,
        include_bots=include_bots,
        limit=limit,
    )
    return await service.run(ctx, query, fresh=fresh)


@router.get("/stats/timeseries")
async def stats_timeseries(
    ctx: ProjectReadDep,
    service: AnalyticsDep,
    window: WindowDep,
    interval: Interval | None = None,
    event: str | None = None,
    include_bots: bool = False,
    compare: bool = False,
    fresh: Fresh = False,
) -> dict[str, Any]:
    """Events and unique users per bucket (empty buckets are zero)."""
    query = _build(
        TrendsQuery,
        kind="trends",
        **window.values,
        interval=interval,
        include_bots=include_bots,
        compare=compare,
        series=[
            Series(event=event, measure="total", name="events"),
            Series(event=event, measure="unique_persons", name="unique_users"),
        ],
    )
    return await service.run(ctx, query, fresh=fresh)


@router.get("/stats/breakdown/{dimension}")
async def stats_breakdown(
    ctx: ProjectReadDep,
    service: AnalyticsDep,
    window: WindowDep,
    dimension: str,
    event: str | None = None,
    include_bots: bool = False,
    limit: int = 10,
    fresh: Fresh = False,
) -> dict[str, Any]:
    """Top values of a column or `properties.<name>` plus "$other", with the previous period."""
    query = _build(
        BreakdownStatsQuery,
        property=DIMENSIONS.get(dimension, dimension),
        **window.values,
        event=event,
        include_bots=include_bots,
        limit=limit,
    )
    return await service.run(ctx, query, fresh=fresh)


@router.get("/stats/realtime")
async def stats_realtime(
    ctx: ProjectReadDep, service: AnalyticsDep, minutes: int = 5
) -> dict[str, Any]:
    """Visitors, events and top pages of the last few minutes (never cached)."""
    query = _build(RealtimeQuery, minutes=minutes)
    return await run_in_threadpool(service.execute, ctx, query)


@router.get("/retention")
async def retention(
    ctx: ProjectReadDep,
    service: AnalyticsDep,
    window: WindowDep,
    start_event: str | None = None,
    return_event: str | None = None,
    interval: str = "day",
    periods: int = 8,
    include_bots: bool = False,
    fresh: Fresh = False,
) -> dict[str, Any]:
    """Cohorts by first occurrence of an event and how many came back in each period."""
    query = _build(
        RetentionQuery,
        kind="retention",
        **window.values,
        start_event=start_event,
        return_event=return_event,
        interval=interval,
        periods=periods,
        include_bots=include_bots,
    )
    return await service.run(ctx, query, fresh=fresh)


@router.get("/persons/{distinct_id}")
async def person(
    ctx: ProjectReadDep,
    service: AnalyticsDep,
    distinct_id: str,
    limit: int = 50,
    fresh: Fresh = False,
) -> dict[str, Any]:
    """One person: first and last seen, totals, identify traits, recent events."""
    query = _build(PersonQuery, kind="person", distinct_id=distinct_id, limit=limit)
    return await service.run(ctx, query, fresh=fresh)


@router.get("/events")
async def events(
    ctx: ProjectReadDep,
    service: AnalyticsDep,
    window: WindowDep,
    event: str | None = None,
    distinct_id: str | None = None,
    include_bots: bool = False,
    limit: int = 50,
    cursor: str | None = None,
    fresh: Fresh = False,
) -> dict[str, Any]:
    """The activity feed, newest first; pass `next_cursor` back as `cursor` for more."""
    query = _build(
        EventsQuery,
        kind="events",
        **window.values,
        event=event,
        distinct_id=distinct_id,
        include_bots=include_bots,
        limit=limit,
        cursor=cursor,
    )
    return await service.run(ctx, query, fresh=fresh)


@router.get("/events/{event_id}")
async def event_detail(
    ctx: ProjectReadDep, service: AnalyticsDep, event_id: uuid.UUID
) -> dict[str, Any]:
    """One event in full."""
    return await run_in_threadpool(service.get_event, ctx, str(event_id))


async def _api(
    ctx: Any,
    service: AnalyticsService,
    part: str,
    fresh: bool,
    **values: Any,
) -> dict[str, Any]:
    query = _build(ApiMetricsQuery, kind="api_metrics", **values)
    result = await service.run(ctx, query, fresh=fresh)
    keep = {
        "kind",
        "date_from",
        "date_to",
        "interval",
        "timezone",
        "cached",
        "generated_at",
    }
    body = {k: v for k, v in result.items() if k in keep}
    if part == "summary":
        body.update(result["summary"])
    elif part == "endpoints":
        body["sort"] = result["sort"]
        body["endpoints"] = result["endpoints"]
    else:
        body["series"] = result["series"]
    return body


@router.get("/api-metrics/summary")
async def api_summary(
    ctx: ProjectReadDep,
    service: AnalyticsDep,
    window: WindowDep,
    fresh: Fresh = False,
) -> dict[str, Any]:
    """Request count and rate, error counts and rates, latency avg/p50/p95/p99/max (ms)."""
    return await _api(
        ctx,
        service,
        "summary",
        fresh,
        **window.values,
    )


@router.get("/api-metrics/endpoints")
async def api_endpoints(
    ctx: ProjectReadDep,
    service: AnalyticsDep,
    window: WindowDep,
    sort: ApiSort = "count",
    limit: int = 50,
    fresh: Fresh = False,
) -> dict[str, Any]:
    """The same metrics per endpoint (method + route), sorted."""
    return await _api(
        ctx,
        service,
        "endpoints",
        fresh,
        **window.values,
        sort=sort,
        limit=limit,
    )


@router.get("/api-metrics/timeseries")
async def api_timeseries(
    ctx: ProjectReadDep,
    service: AnalyticsDep,
    window: WindowDep,
    interval: Interval | None = None,
    fresh: Fresh = False,
) -> dict[str, Any]:
    """The API metrics per time bucket."""
    return await _api(
        ctx,
        service,
        "timeseries",
        fresh,
        **window.values,
        interval=interval,
    )


@router.get("/web3/summary")
async def web3_summary(
    ctx: ProjectReadDep,
    service: AnalyticsDep,
    window: WindowDep,
    interval: Interval | None = None,
    wallet: str | None = None,
    limit: int = 10,
    fresh: Fresh = False,
) -> dict[str, Any]:
    """Transactions, success rate, volume per chain and token, wallets, contracts, series."""
    query = _build(
        Web3Query,
        kind="web3",
        **window.values,
        interval=interval,
        wallet=wallet,
        limit=limit,
    )
    return await service.run(ctx, query, fresh=fresh)


@router.get("/live")
async def live(
    request: Request,
    ctx: ProjectReadDep,
    service: AnalyticsDep,
    max_seconds: Annotated[float | None, Query(gt=0, le=86_400)] = None,
) -> StreamingResponse:
    """Server-Sent Events: each incoming event as `event: event`, plus heartbeat comments.

    Polls the event store for newly received events about once a second, so events
    ingested by any process show up. The stream ends when the client disconnects.
    """
    settings: Settings = request.app.state.settings
    return StreamingResponse(
        _live_stream(
            request,
            service,
            ctx,
            poll=settings.live_poll_interval_seconds,
            heartbeat=settings.live_heartbeat_seconds,
            max_seconds=max_seconds,
        ),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


# Events can become visible slightly out of received_at order (group commit, several
# writers): each poll looks back this far behind the newest event sent and leaves out the
# ids it sent already, so a late one is still shown and a burst never stalls the stream.
_LIVE_OVERLAP = timedelta(seconds=5)
# At most this many sent ids are passed back to leave out; under a flood the look-back
# shrinks to the time they cover (late events of a flood may then be missed, never resent).
_LIVE_MAX_EXCLUDE = 2_000
# Events per poll; a full page is followed by the next one at once.
_LIVE_PAGE = 200


def _live_window(sent: dict[str, datetime], newest: datetime) -> tuple[datetime, list[str]]:
    """Where the next poll starts and the sent ids after that point."""
    after = newest - _LIVE_OVERLAP
    recent = [(at, key) for key, at in sent.items() if at > after]
    if len(recent) > _LIVE_MAX_EXCLUDE:
        recent.sort(reverse=True)
        recent = recent[:_LIVE_MAX_EXCLUDE]
        after = recent[-1][0]
        recent = [(at, key) for at, key in recent if at > after]
    return after, [key for _, key in recent]


async def _live_stream(
    request: Request,
    service: AnalyticsService,
    ctx: Any,
    *,
    poll: float,
    heartbeat: float,
    max_seconds: float | None,
) -> AsyncIterator[bytes]:
    started = time.monotonic()
    opened = newest = datetime.now(UTC)
    sent: dict[str, datetime] = {}
    last_beat = started
    yield b": connected\n\nretry: 2000\n\n"
    while True:
        if await request.is_disconnected():
            return
        if max_seconds is not None and time.monotonic() - started >= max_seconds:
            return
        after, exclude = _live_window(sent, newest)
        rows = await run_in_threadpool(
            service.live_batch, ctx, after, limit=_LIVE_PAGE, exclude=exclude
        )
        for row in rows:
            event_id = str(row["event_id"])
            received = row["received_at"]
            if received.tzinfo is None:
                received = received.replace(tzinfo=UTC)
            if event_id in sent:
                continue
            sent[event_id] = received
            newest = max(newest, received)
            body = event_row(row, ctx.timezone)
            # The first poll looks back a few seconds: those events arrived before the stream
            # opened and say so, so a client counting "since you opened" can leave them out.
            body["replayed"] = received < opened
            data = orjson.dumps(body, default=str)
            yield b"id: " + event_id.encode() + b"\nevent: event\ndata: " + data + b"\n\n"
        horizon = newest - _LIVE_OVERLAP * 2
        for key in [k for k, v in sent.items() if v < horizon]:
            del sent[key]
        now = time.monotonic()
        if now - last_beat >= heartbeat:
            last_beat = now
            yield b": heartbeat\n\n"
        if len(rows) < _LIVE_PAGE:  # caught up: wait for the next poll, else read on at once
            await asyncio.sleep(poll)


@router.get("/stats/sessions")
async def stats_sessions(
    ctx: ProjectReadDep,
    service: AnalyticsDep,
    window: WindowDep,
    include_bots: bool = False,
    fresh: Fresh = False,
) -> dict[str, Any]:
    """Visits, bounce rate (% of visits with one page view), average visit length and page
    views per visit, each with the previous period's value."""
    query = _build(
        SessionsQuery,
        **window.values,
        include_bots=include_bots,
    )
    return await service.run(ctx, query, fresh=fresh)
