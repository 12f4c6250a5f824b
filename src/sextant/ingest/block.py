"""A request's accepted events as columns, and the Arrow table of a group-commit block.

The normaliser's fast path appends each event's own values to per-column lists and refers
to what enrichment derives from a shared input (the page URL, the referrer, the user agent,
the client address) by an index into that request's distinct inputs: a batch of 500 events
from a handful of browsers parses and stores each user agent's five columns once, and
Arrow's `take` spreads them over the rows in C. Events the fast path does not handle are
normalised to row dicts as before (`rows`). At flush the writer turns every request of the
block into one Arrow table (`build_table`) that ClickHouse reads without parsing text:
measured on the benchmark event, ~2 us a row against ~9 us for JSONEachRow, and no
per-row `orjson.dumps` in Python.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from itertools import chain
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from sextant.ingest.event import EVENT_COLUMNS, Row

# Arrow types of the `events` columns (ClickHouse casts each to the column's type on insert:
# strings to UUID, LowCardinality and UInt256; timestamps are epoch milliseconds).
_STRING = pa.string()
_TIMESTAMP = pa.timestamp("ms", tz="UTC")
COLUMN_TYPES: dict[str, pa.DataType] = {
    "timestamp": _TIMESTAMP,
    "received_at": _TIMESTAMP,
    "is_bot": pa.uint8(),
    "screen_width": pa.uint16(),
    "screen_height": pa.uint16(),
    "http_status": pa.uint16(),
    "duration_ms": pa.float64(),
    "request_bytes": pa.uint64(),
    "response_bytes": pa.uint64(),
    "chain_id": pa.uint64(),
}
# What a column holds when an event does not set it (ClickHouse's defaults). Sent
# explicitly rather than as nulls: a null string does not cast to UInt256.
COLUMN_DEFAULTS: dict[str, Any] = {
    "timestamp": 0,
    "received_at": 0,
    "is_bot": 0,
    "screen_width": 0,
    "screen_height": 0,
    "http_status": 0,
    "duration_ms": 0.0,
    "request_bytes": 0,
    "response_bytes": 0,
    "chain_id": 0,
    "tx_value": "0",
}

# Columns derived from one input, in the order of the value tuples the normaliser stores.
PAGE_COLUMNS = (
    "url",
    "host",
    "path",
    "utm_source",
    "utm_medium",
    "utm_campaign",
    "utm_term",
    "utm_content",
    "click_id",
)
REFERRER_COLUMNS = ("referrer", "referrer_domain")
AGENT_COLUMNS = ("browser", "browser_version", "os", "os_version", "device_type", "is_bot")
ADDRESS_COLUMNS = ("ip_hash", "country", "region", "city", "ip")

NO_PAGE: tuple[str, ...] = ("",) * len(PAGE_COLUMNS)
NO_REFERRER: tuple[str, ...] = ("",) * len(REFERRER_COLUMNS)
NO_AGENT: tuple[Any, ...] = ("", "", "", "", "", 0)
NO_ADDRESS: tuple[str, ...] = ("",) * len(ADDRESS_COLUMNS)

# The fast path's own columns, one value per event (attribute name = column name).
OWN_COLUMNS = (
    "message_id",
    "event_id",
    "type",
    "event",
    "timestamp",
    "distinct_id",
    "user_id",
    "anonymous_id",
    "session_id",
    "title",
    "locale",
    "screen_width",
    "screen_height",
    "library",
    "library_version",
    "properties",
)


# Own columns that many events leave unset (the rest are always sent).
_OPTIONAL = frozenset(OWN_COLUMNS) - {"message_id", "event_id", "type", "event", "timestamp"}


class Family:
    """Distinct inputs of one request (e.g. its user agents) and each event's index into them."""

    __slots__ = ("index", "positions", "values")

    def __init__(self, empty: tuple[Any, ...]) -> None:
        # Index 0 is "not set": an event without the input points at the defaults.
        self.index: dict[Any, int] = {"": 0}
        self.values: list[tuple[Any, ...]] = [empty]
        self.positions: list[int] = []


class Columns:
    """The fast path's events of one request: a list per own column, and the families."""

    __slots__ = (*OWN_COLUMNS, "address", "agent", "page", "referrer")

    def __init__(self) -> None:
        self.message_id: list[str] = []
        self.event_id: list[str] = []
        self.type: list[str] = []
        self.event: list[str] = []
        self.timestamp: list[int] = []
        self.distinct_id: list[str] = []
        self.user_id: list[str] = []
        self.anonymous_id: list[str] = []
        self.session_id: list[str] = []
        self.title: list[str] = []
        self.locale: list[str] = []
        self.screen_width: list[int] = []
        self.screen_height: list[int] = []
        self.library: list[str] = []
        self.library_version: list[str] = []
        self.properties: list[str | bytes] = []
        self.page = Family(NO_PAGE)
        self.referrer = Family(NO_REFERRER)
        self.agent = Family(NO_AGENT)
        # Per event (cached tuples): a batch's events often come from as many addresses.
        self.address: list[tuple[str, ...]] = []

    def __len__(self) -> int:
        return len(self.message_id)

    def keep(self, positions: list[int]) -> None:
        """Keep only the events at `positions` (ascending)."""
        for name in (*OWN_COLUMNS, "address"):
            values = getattr(self, name)
            setattr(self, name, [values[i] for i in positions])
        for family in (self.page, self.referrer, self.agent):
            family.positions = [family.positions[i] for i in positions]


class EventBlock:
    """One request's accepted events: fast-path columns (if any) plus normalised rows."""

    __slots__ = ("columns", "key_positions", "keys", "project_id", "received_ms", "rows", "table")

    def __init__(self, project_id: str, received_ms: int) -> None:
        self.project_id = project_id
        self.received_ms = received_ms
        self.columns: Columns | None = None
        self.rows: list[Row] = []
        # Or the events already as an Arrow table (built by a normalising worker, pool.py);
        # then `key_positions` are its row numbers.
        self.table: pa.Table | None = None
        # Dedup keys (`project|message id`) of the events whose client sent a message id,
        # and where each event is: >= 0 a fast-path event, < 0 row `~position`. A message id
        # the server generated is unique by construction and needs no key.
        self.keys: list[str] = []
        self.key_positions: list[int] = []

    @classmethod
    def from_rows(cls, project_id: str, rows: Sequence[Row], received_ms: int) -> EventBlock:
        """A block of normalised rows (each with its `message_id`), every one keyed."""
        block = cls(project_id, received_ms)
        block.rows = list(rows)
        prefix = f"{project_id}|"
        block.keys = [prefix + row["message_id"] for row in rows]
        block.key_positions = [~i for i in range(len(rows))]
        return block

    @classmethod
    def from_table(
        cls,
        project_id: str,
        received_ms: int,
        table: pa.Table | None,
        keys: list[str],
        positions: list[int],
    ) -> EventBlock:
        """A block of events already built into a table (`build_table` of a worker's block)."""
        block = cls(project_id, received_ms)
        block.table = table
        block.keys = keys
        block.key_positions = positions
        return block

    @property
    def fast_count(self) -> int:
        return 0 if self.columns is None else len(self.columns)

    def __len__(self) -> int:
        table = 0 if self.table is None else self.table.num_rows
        return self.fast_count + len(self.rows) + table

    def without(self, positions: set[int]) -> None:
        """Drop the events at `positions` (as in `key_positions`): retries already stored."""
        # A table's rows are numbered like fast-path events (>= 0); it has no other rows.
        columnar = self.table.num_rows if self.table is not None else self.fast_count
        fast_keep = [i for i in range(columnar) if i not in positions]
        slow_keep = [i for i in range(len(self.rows)) if ~i not in positions]
        if len(fast_keep) < columnar:
            if self.table is not None:
                self.table = self.table.take(pa.array(fast_keep, pa.int32()))
            elif self.columns is not None:
                self.columns.keep(fast_keep)
        if len(slow_keep) < len(self.rows):
            self.rows = [self.rows[i] for i in slow_keep]
        fast_moved = {old: new for new, old in enumerate(fast_keep)}
        slow_moved = {old: new for new, old in enumerate(slow_keep)}
        kept = [
            (key, fast_moved[p] if p >= 0 else ~slow_moved[~p])
            for key, p in zip(self.keys, self.key_positions, strict=True)
            if p not in positions
        ]
        self.keys = [key for key, _ in kept]
        self.key_positions = [p for _, p in kept]


def _array(name: str, values: list[Any]) -> pa.Array:
    kind = COLUMN_TYPES.get(name)
    if kind is _TIMESTAMP:
        return pa.array(values, pa.int64()).cast(_TIMESTAMP)
    return pa.array(values, kind or _STRING)


def _repeat(blocks: Sequence[EventBlock], value: Callable[[EventBlock], Any]) -> list[Any]:
    """A value per request, repeated over its rows (the row path's events)."""
    out: list[Any] = []
    for block in blocks:
        if block.rows:
            out += [value(block)] * len(block.rows)
    return out


def _constant(
    blocks: Sequence[EventBlock], value: Callable[[EventBlock], Any], kind: pa.DataType
) -> pa.Array:
    """A value per request, repeated over its fast-path events (in C, not as a list)."""
    arrays = [pa.repeat(pa.scalar(value(b), kind), b.fast_count) for b in blocks if b.fast_count]
    return arrays[0] if len(arrays) == 1 else pa.concat_arrays(arrays)


def _family_columns(
    blocks: Sequence[Columns],
    family_of: Callable[[Columns], Family],
    names: tuple[str, ...],
) -> dict[str, pa.Array]:
    # One set of values for the whole flush: requests from the same site share most of their
    # pages, referrers and browsers, so each distinct value is converted once, not once per
    # request (the benchmark's 16 requests of one flush share all of theirs).
    positions: list[int] = []
    values: list[tuple[Any, ...]] = []
    number_of: dict[tuple[Any, ...], int] = {}
    for block in blocks:
        family = family_of(block)
        if not family.positions:
            continue
        numbers = []
        for value in family.values:
            number = number_of.get(value)
            if number is None:
                number = number_of[value] = len(values)
                values.append(value)
            numbers.append(number)
        positions += [numbers[p] for p in family.positions]
    if not positions:
        return {}
    indices = pa.array(positions, pa.int32())
    columns: dict[str, pa.Array] = {}
    for number, name in enumerate(names):
        column = [value[number] for value in values]
        if column.count(COLUMN_DEFAULTS.get(name, "")) == len(column):
            continue  # no event sets it: ClickHouse fills the default
        columns[name] = pc.take(_array(name, column), indices)
    return columns


def _timestamp_ms(value: Any) -> int:
    """A row's DateTime64 value: epoch ms, or the `seconds.millis` text of `format_ms`."""
    if value.__class__ is str:
        return int(value.replace(".", "", 1))
    return int(value)


def _row_columns(rows: list[Row], received: list[int]) -> dict[str, pa.Array]:
    present: set[str] = set()
    for row in rows:
        present.update(row)
    columns: dict[str, pa.Array] = {}
    for name in [name for name in EVENT_COLUMNS if name in present]:
        default = COLUMN_DEFAULTS.get(name, "")
        values = [row.get(name, default) for row in rows]
        if COLUMN_TYPES.get(name) is _TIMESTAMP:
            try:
                columns[name] = _array(name, values)
            except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError):
                columns[name] = _array(name, [_timestamp_ms(v) for v in values])
            continue
        columns[name] = _array(name, values)
    if "received_at" not in columns:
        columns["received_at"] = _array("received_at", received)
    return columns


def _fast_columns(blocks: Sequence[EventBlock]) -> dict[str, pa.Array]:
    columns: dict[str, pa.Array] = {
        "project_id": _constant(blocks, lambda b: b.project_id, _STRING),
        "received_at": _constant(blocks, lambda b: b.received_ms, _TIMESTAMP),
    }
    parts = [block.columns for block in blocks if block.columns is not None]
    for name in OWN_COLUMNS:
        values = list(chain.from_iterable(getattr(part, name) for part in parts))
        if name in _OPTIONAL and values.count(COLUMN_DEFAULTS.get(name, "")) == len(values):
            continue  # no event sets it: ClickHouse fills the default
        columns[name] = _array(name, values)
    columns.update(_family_columns(parts, lambda part: part.page, PAGE_COLUMNS))
    columns.update(_family_columns(parts, lambda part: part.referrer, REFERRER_COLUMNS))
    columns.update(_family_columns(parts, lambda part: part.agent, AGENT_COLUMNS))
    addresses = list(chain.from_iterable(part.address for part in parts))
    for number, name in enumerate(ADDRESS_COLUMNS):
        column = [address[number] for address in addresses]  # (zip(*...) is slower)
        if column.count("") != len(column):
            columns[name] = _array(name, column)
    return columns


def _table(columns: dict[str, pa.Array]) -> pa.Table:
    return pa.Table.from_arrays(list(columns.values()), names=list(columns))


def _padded(table: pa.Table, names: Iterable[str]) -> pa.Table:
    """`table` with exactly the columns `names`, in that order (those it lacks hold their
    default)."""
    count = table.num_rows
    present = set(table.column_names)
    for name in names:
        if name not in present:
            table = table.append_column(name, _array(name, [COLUMN_DEFAULTS.get(name, "")] * count))
    return table.select(list(names))


def build_table(blocks: Sequence[EventBlock]) -> pa.Table | None:
    """The events of `blocks` as one Arrow table (only the columns some event sets)."""
    fast = [block for block in blocks if block.fast_count]
    slow = [block for block in blocks if block.rows]
    parts: list[pa.Table] = []
    if fast:
        parts.append(_table(_fast_columns(fast)))
    if slow:
        rows = list(chain.from_iterable(block.rows for block in slow))
        received = _repeat(slow, lambda b: b.received_ms)
        parts.append(_table(_row_columns(rows, received)))
    parts += [block.table for block in blocks if block.table is not None and block.table.num_rows]
    if not parts:
        return None
    if len(parts) == 1:
        return parts[0]
    names = dict.fromkeys(chain.from_iterable(part.column_names for part in parts))
    return pa.concat_tables([_padded(part, names) for part in parts])
