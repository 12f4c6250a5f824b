"""The declarative query model: one JSON shape per report kind.

Everything a user can name here is validated before it reaches the compiler: columns come
from an allow-list, JSON property names match a strict pattern, and values only ever travel
as bound parameters.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Interval = Literal["minute", "hour", "day", "week", "month"]
FilterOp = Literal[
    "eq",
    "neq",
    "in",
    "not_in",
    "contains",
    "not_contains",
    "gt",
    "gte",
    "lt",
    "lte",
    "is_set",
    "is_not_set",
]
Scalar = str | int | float | bool

# Typed columns of `events` a user may filter, group or aggregate on, by value kind.
STRING_COLUMNS = frozenset(
    {
        "type",
        "event",
        "distinct_id",
        "user_id",
        "anonymous_id",
        "session_id",
        "url",
        "host",
        "path",
        "title",
        "referrer",
        "referrer_domain",
        "utm_source",
        "utm_medium",
        "utm_campaign",
        "utm_term",
        "utm_content",
        "click_id",
        "browser",
        "browser_version",
        "os",
        "os_version",
        "device_type",
        "locale",
        "country",
        "region",
        "city",
        "library",
        "library_version",
        "http_method",
        "http_route",
        "wallet_address",
        "contract_address",
        "tx_hash",
        "token_symbol",
        "tx_status",
        "message_id",
    }
)
NUMBER_COLUMNS = frozenset(
    {
        "is_bot",
        "screen_width",
        "screen_height",
        "http_status",
        "duration_ms",
        "request_bytes",
        "response_bytes",
        "chain_id",
    }
)
BIGINT_COLUMNS = frozenset({"tx_value"})
COLUMNS = STRING_COLUMNS | NUMBER_COLUMNS | BIGINT_COLUMNS

PROPERTY_PREFIX = "properties."
_PROPERTY_NAME = re.compile(
    r"[A-Za-z_$][A-Za-z0-9_$\-]{0,63}(\.[A-Za-z_$][A-Za-z0-9_$\-]{0,63}){0,3}\Z"
)


def check_property(name: str) -> str:
    """Accept a typed column name or `properties.<key>[.<nested>]`; reject anything else."""
    if name in COLUMNS:
        return name
    if name.startswith(PROPERTY_PREFIX):
        key = name[len(PROPERTY_PREFIX) :]
        if _PROPERTY_NAME.match(key):
            return name
        raise ValueError(
            f"invalid property name {key!r}: use letters, digits, _, $ and - "
            "(up to 64 characters, up to 4 levels separated by dots)"
        )
    raise ValueError(
        f"unknown column {name!r}: use one of the event columns "
        f"({', '.join(sorted(COLUMNS))}) or properties.<name>"
    )


def _is_number(value: object) -> bool:
    """Numbers, or numeric text (big integers such as wei amounts travel as strings)."""
    if isinstance(value, bool):
        return False
    if isinstance(value, int | float):
        return True
    if isinstance(value, str):
        try:
            float(value)
        except ValueError:
            return False
        return True
    return False


PropertyName = Annotated[str, Field(min_length=1, max_length=300)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Filter(_Model):
    property: PropertyName
    op: FilterOp = "eq"
    value: Scalar | list[Scalar] | None = None

    @field_validator("property")
    @classmethod
    def _property(cls, value: str) -> str:
        return check_property(value)

    @model_validator(mode="after")
    def _value_fits_op(self) -> Filter:
        if self.op in ("is_set", "is_not_set"):
            return self
        if self.value is None:
            raise ValueError(f"filter on {self.property!r}: op {self.op!r} needs a value")
        if self.op in ("in", "not_in"):
            if not isinstance(self.value, list) or not self.value:
                raise ValueError(
                    f"filter on {self.property!r}: op {self.op!r} needs a non-empty list"
                )
            if len(self.value) > 1000:
                raise ValueError(f"filter on {self.property!r}: at most 1000 values")
        elif isinstance(self.value, list):
            raise ValueError(f"filter on {self.property!r}: op {self.op!r} takes one value")
        if self.op in ("gt", "gte", "lt", "lte") and not _is_number(self.value):
            raise ValueError(f"filter on {self.property!r}: op {self.op!r} needs a number")
        return self


class FilterGroup(_Model):
    op: Literal["and", "or"] = "and"
    filters: list[Filter | FilterGroup] = Field(min_length=1, max_length=50)


FilterItem = Filter | FilterGroup


class DateRangeMixin(_Model):
    date_from: str | None = Field(
        default=None, description="ISO date/datetime or -24h, -7d, -30d, mtd, ytd, all"
    )
    date_to: str | None = Field(default=None, description="ISO date/datetime (default: now)")
    filters: list[FilterItem] = Field(default_factory=list, max_length=50)
    include_bots: bool = False


class Breakdown(_Model):
    property: PropertyName
    limit: int = Field(default=10, ge=1, le=100)

    @field_validator("property")
    @classmethod
    def _property(cls, value: str) -> str:
        return check_property(value)


Measure = Literal[
    "total",
    "unique_persons",
    "sessions",
    "sum",
    "avg",
    "min",
    "max",
    "median",
    "p90",
    "p95",
    "p99",
]
NUMERIC_MEASURES = frozenset({"sum", "avg", "min", "max", "median", "p90", "p95", "p99"})


class Series(_Model):
    event: str | None = Field(default=None, max_length=200, description="None = all events")
    measure: Measure = "total"
    property: PropertyName | None = None
    filters: list[FilterItem] = Field(default_factory=list, max_length=50)
    name: str | None = Field(default=None, max_length=200)

    @field_validator("property")
    @classmethod
    def _property(cls, value: str | None) -> str | None:
        if value is None:
            return None
        checked = check_property(value)
        if checked in STRING_COLUMNS:
            raise ValueError(f"property {value!r} is not numeric")
        return checked

    @model_validator(mode="after")
    def _numeric_needs_property(self) -> Series:
        if self.measure in NUMERIC_MEASURES and self.property is None:
            raise ValueError(f"measure {self.measure!r} needs a numeric property")
        return self

    def display_name(self) -> str:
        if self.name:
            return self.name
        base = self.event or "all events"
        if self.measure in NUMERIC_MEASURES:
            return f"{base} {self.measure}({self.property})"
        return f"{base} {self.measure}"


class TrendsQuery(DateRangeMixin):
    kind: Literal["trends"]
    series: list[Series] = Field(default_factory=lambda: [Series()], min_length=1, max_length=10)
    interval: Interval | None = None
    breakdown: Breakdown | None = None
    compare: bool = False


class FunnelStep(_Model):
    event: str = Field(min_length=1, max_length=200)
    filters: list[FilterItem] = Field(default_factory=list, max_length=20)
    name: str | None = Field(default=None, max_length=200)


class FunnelQuery(DateRangeMixin):
    kind: Literal["funnel"]
    steps: list[FunnelStep] = Field(min_length=2, max_length=10)
    window_seconds: int = Field(default=86_400, ge=1, le=90 * 86_400)
    order: Literal["ordered", "strict", "any"] = "ordered"
    breakdown: Breakdown | None = None


class RetentionQuery(DateRangeMixin):
    kind: Literal["retention"]
    start_event: str | None = Field(default=None, max_length=200, description="None = any")
    return_event: str | None = Field(default=None, max_length=200, description="None = any")
    interval: Literal["day", "week", "month"] = "day"
    periods: int = Field(default=8, ge=1, le=90)


class ActiveUsersQuery(DateRangeMixin):
    kind: Literal["active_users"]


class PathsQuery(DateRangeMixin):
    kind: Literal["paths"]
    event: str = Field(min_length=1, max_length=200)
    direction: Literal["next", "previous"] = "next"
    depth: int = Field(default=3, ge=1, le=5)
    limit: int = Field(default=10, ge=1, le=50)


class PersonQuery(_Model):
    kind: Literal["person"]
    distinct_id: str = Field(min_length=1, max_length=400)
    limit: int = Field(default=50, ge=1, le=500)


class EventsQuery(DateRangeMixin):
    kind: Literal["events"]
    limit: int = Field(default=50, ge=1, le=500)
    cursor: str | None = Field(default=None, max_length=200)
    event: str | None = Field(default=None, max_length=200)
    distinct_id: str | None = Field(default=None, max_length=400)


ApiSort = Literal[
    "count", "error_rate", "server_error_rate", "avg", "p50", "p95", "p99", "max", "route"
]


class ApiMetricsQuery(DateRangeMixin):
    kind: Literal["api_metrics"]
    interval: Interval | None = None
    sort: ApiSort = "count"
    limit: int = Field(default=50, ge=1, le=500)


class Web3Query(DateRangeMixin):
    kind: Literal["web3"]
    interval: Interval | None = None
    limit: int = Field(default=10, ge=1, le=100)
    wallet: str | None = Field(default=None, max_length=200)


AnalyticsQuery = Annotated[
    TrendsQuery
    | FunnelQuery
    | RetentionQuery
    | ActiveUsersQuery
    | PathsQuery
    | PersonQuery
    | EventsQuery
    | ApiMetricsQuery
    | Web3Query,
    Field(discriminator="kind"),
]


def normalised(query: BaseModel) -> dict[str, Any]:
    """The query as plain JSON with defaults filled in: the cache key's content."""
    return query.model_dump(mode="json")


# -- internal query kinds behind the convenience endpoints (same compiler, same cache) -------


class SummaryQuery(DateRangeMixin):
    kind: Literal["summary"] = "summary"
    limit: int = Field(default=10, ge=1, le=100)


class BreakdownStatsQuery(DateRangeMixin):
    kind: Literal["breakdown"] = "breakdown"
    property: PropertyName
    event: str | None = Field(default=None, max_length=200)
    limit: int = Field(default=10, ge=1, le=100)

    @field_validator("property")
    @classmethod
    def _property(cls, value: str) -> str:
        return check_property(value)


class RealtimeQuery(_Model):
    kind: Literal["realtime"] = "realtime"
    minutes: int = Field(default=5, ge=1, le=60)


class SessionsQuery(DateRangeMixin):
    """Visits: sessions with at least one page view, their bounce rate and duration."""

    kind: Literal["sessions"] = "sessions"
