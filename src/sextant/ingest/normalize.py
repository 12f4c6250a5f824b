"""Decode, validate and enrich one event of any wire format into a canonical row.

Hand-written checks instead of a Pydantic model per event: this runs for every event of
every request, and plain dict access is several times faster (see benchmarks/ingest.py).
Every check reports the field it is about, so a client can fix its payload.

`Normalizer.block` runs a request's events through a fast path first: the common shapes
(track, page and screen events with the usual context) written straight into the columns
of an `EventBlock`. Anything it does not recognise, and every event with a problem, goes
through `Normalizer.native`, the one place the rules and error messages are written down;
the fast path must store exactly what `native` would (tests/ingest/test_fast_path.py).
`Normalizer.typed_block` is the same fast path for a batch msgspec decoded into structs
(`typed.py`): the two differ only in how they read an event, and share what they store.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import orjson

from sextant.ingest.block import NO_ADDRESS, NO_AGENT, Columns, EventBlock
from sextant.ingest.enrich import (
    GeoResolver,
    IpHasher,
    app_device_columns,
    checksum_address,
    referrer_domain,
    url_columns,
    user_agent_columns,
)
from sextant.ingest.event import EVENT_TYPES, TYPE_EVENT_NAMES, Row

if TYPE_CHECKING:
    from sextant.ingest.typed import Event, SegmentEvent

MAX_NAME = 200
MAX_ID = 256
MAX_MESSAGE_ID = 200
MAX_TEXT = 4096
MAX_FUTURE_MS = 24 * 3600 * 1000
# Clock skew below this is network latency or retry delay, not a wrong clock: leaving the
# client's timestamp untouched keeps a retried message's timestamp (and so its sort key)
# identical, which ReplacingMergeTree needs to collapse the copies.
SKEW_TOLERANCE_MS = 60_000
MAX_UINT256 = (1 << 256) - 1
# Requests with fewer events skip the fast path (see `Normalizer.block`).
FAST_PATH_MIN_EVENTS = 8
MAX_UINT64 = (1 << 64) - 1

# An event the fast path accepted: its own values and the inputs enrichment derives from, in
# the order `Normalizer._fill` takes them (message_id, type, event, timestamp, user_id,
# anonymous_id, session_id, title, locale, screen width and height, library and its version,
# properties, url, path, referrer, user agent, client address).
Accepted = tuple[Any, ...]

# The first byte of a raw JSON value that is an object or null ("{", "n").
_OBJECT_OR_NULL = (123, 110)

_HEX40 = re.compile(r"0x[0-9a-fA-F]{40}\Z")
_HEX64 = re.compile(r"0x[0-9a-fA-F]{64}\Z")
# `\Z`, not `$`: "$" also matches before a final newline, and "5\n" is no UInt256 (the
# store refused the whole flush, every retry of it too).
_DIGITS = re.compile(r"[0-9]{1,78}\Z")
_HTTP_METHODS = frozenset(
    {"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "TRACE", "CONNECT"}
)


def compact_json(value: Any) -> bytes:
    """`value` as compact JSON, integers beyond 64 bits included (orjson refuses them; the
    standard library writes them whole). ValueError or TypeError when it is no JSON."""
    try:
        return orjson.dumps(value)
    except TypeError:
        try:
            return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()
        except RecursionError:
            raise ValueError(f"nested deeper than {MAX_DEPTH} levels") from None


# How deep an event's properties (an identify's traits included) may nest: far beyond any
# real event, well within what the parsers and encoders handle (orjson: 255 levels).
MAX_DEPTH = 32
_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')
_BRACKETS = re.compile(rb"[\[\]{}]")


def nesting_depth(encoded: bytes) -> int:
    """How deep the JSON text `encoded` nests (an object or array is one level), read
    without building it (nothing recurses, whatever the depth)."""
    depth = deepest = 0
    for match in _BRACKETS.finditer(_JSON_STRING.sub(b'""', encoded)):
        if match.group() in (b"{", b"["):
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest


def too_deep(encoded: bytes) -> bool:
    """Whether the JSON text `encoded` nests deeper than `MAX_DEPTH` (cheap for the usual
    text: one that opens fewer objects and arrays than the limit cannot be deeper)."""
    return encoded.count(b"{") + encoded.count(b"[") > MAX_DEPTH and (
        nesting_depth(encoded) > MAX_DEPTH
    )


class InvalidEvent(Exception):
    """An event failed validation; `errors` name each bad field."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("; ".join(errors))
        self.errors = errors


@dataclass(slots=True)
class RequestMeta:
    """What every event of one request shares: tenant, receive time, client address."""

    project_id: str
    store_raw_ip: bool
    received_ms: int
    ip: str
    user_agent: str = ""
    sent_at_ms: int | None = None

    @property
    def day(self) -> str:
        return dt.datetime.fromtimestamp(self.received_ms / 1000, dt.UTC).strftime("%Y-%m-%d")


def parse_timestamp(value: Any, field: str) -> int:
    """ISO 8601 string or epoch seconds/milliseconds -> epoch milliseconds (UTC)."""
    if value.__class__ is not str:  # the common case, a decoded JSON string, checked first
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise InvalidEvent([f"{field}: must be an ISO 8601 string or a number"])
        if not isinstance(value, str):
            return _number_ms(float(value), field)
    text = value.strip()
    if len(text) >= 10 and text[4] == "-":  # ISO 8601 date first: the common case
        try:
            return iso_ms(text)
        except ValueError:
            raise InvalidEvent([f"{field}: {value[:40]!r} is not an ISO 8601 timestamp"]) from None
    try:
        number = float(text)
    except ValueError:
        raise InvalidEvent(
            [f"{field}: {value[:40]!r} is not an ISO 8601 timestamp or a number"]
        ) from None
    return _number_ms(number, field)


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_fromisoformat = dt.datetime.fromisoformat


def iso_ms(text: str) -> int:
    """Epoch milliseconds of an ISO 8601 timestamp (UTC unless it says otherwise).

    `round(parsed.timestamp() * 1000)`, computed as `timestamp()` does (the exact number of
    microseconds since the epoch divided by 10**6) without its slow `utcoffset` calls.
    """
    parsed = _fromisoformat(text)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    delta = parsed - _EPOCH
    micros = (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
    return round(micros / 1_000_000 * 1000)


def _number_ms(number: float, field: str) -> int:
    if number != number or number in (float("inf"), float("-inf")):
        raise InvalidEvent([f"{field}: must be a finite number"])
    # Epoch milliseconds are > 1e11 for any date after 1973; seconds are far below.
    return round(number) if abs(number) > 1e11 else round(number * 1000)


def resolve_timestamp(ts_ms: int | None, sent_ms: int | None, received_ms: int) -> int:
    """Segment's rule: timestamp + (receivedAt - sentAt), applied when the skew matters.

    The correction is rounded to whole seconds so two deliveries of the same message (whose
    `sentAt` differ by the retry delay and network jitter) land on the same stored time.
    """
    if ts_ms is None:
        return received_ms
    if sent_ms is not None:
        skew = received_ms - sent_ms
        if abs(skew) > SKEW_TOLERANCE_MS:
            return ts_ms + round(skew / 1000) * 1000
    return ts_ms


def fast_timestamp(
    ts_raw: Any, sent_raw: Any, request_sent_ms: int | None, received_ms: int
) -> int | None:
    """A fast-path event's stored time, as `native` computes it (`parse_timestamp`, then
    `resolve_timestamp`); None where the fast path leaves the event to `native` for its
    error: a value that is not a time, or a time more than a day ahead or before 1970."""
    try:
        if ts_raw is None:
            ts_ms = None
        elif ts_raw.__class__ is str and len(ts_raw) >= 10 and ts_raw[4] == "-":
            ts_ms = iso_ms(ts_raw)  # what parse_timestamp does with it
        else:
            ts_ms = parse_timestamp(ts_raw, "timestamp")
        sent_ms = request_sent_ms if sent_raw is None else parse_timestamp(sent_raw, "sent_at")
    except (InvalidEvent, ValueError):
        return None
    timestamp = resolve_timestamp(ts_ms, sent_ms, received_ms)
    if timestamp > received_ms + MAX_FUTURE_MS or timestamp < 0:
        return None
    return timestamp


def _id(value: Any, field: str, errors: list[str], limit: int = MAX_ID) -> str:
    if value is None or value == "":
        return ""
    if isinstance(value, str):
        if len(value) > limit:
            errors.append(f"{field}: longer than {limit} characters")
            return ""
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    errors.append(f"{field}: must be a string")
    return ""


def _text(value: Any, limit: int = MAX_TEXT) -> str:
    if isinstance(value, str):
        return value[:limit]
    if value is None:
        return ""
    return str(value)[:limit]


def _obj(value: Any, field: str, errors: list[str]) -> dict[str, Any] | None:
    if value is None:
        return None
    if isinstance(value, dict):
        return value
    errors.append(f"{field}: must be an object")
    return None


def _uint(value: Any, field: str, errors: list[str], limit: int = MAX_UINT64) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float):
        if isinstance(value, str) and value.isascii() and value.isdigit():  # not "²"
            value = int(value)
        else:
            errors.append(f"{field}: must be a non-negative integer")
            return 0
    if value < 0 or value > limit or value != int(value):
        errors.append(f"{field}: must be an integer between 0 and {limit}")
        return 0
    return int(value)


def _address(value: Any, field: str, errors: list[str]) -> str:
    if value is None or value == "":
        return ""
    if not isinstance(value, str) or not _HEX40.match(value):
        errors.append(f"{field}: must be a 20-byte hex address (0x followed by 40 hex digits)")
        return ""
    return checksum_address(value)


_ids = random.Random()  # seeded from os.urandom once; os.urandom per event is slow on VMs


def new_message_id() -> str:
    """128 random bits: for events the client sent without a message id."""
    return f"{_ids.getrandbits(128):032x}"


_UUID = re.compile(
    r"(?:[0-9a-fA-F]{32}|[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})\Z"
)


def event_uuid(project_id: str, message_id: str) -> str:
    """A stable event id: the same message in the same project always gets the same one.

    A message id that is already a UUID (what SDKs send) is used as is; anything else is
    hashed with the project into one.
    """
    if _UUID.match(message_id):
        return message_id
    return hashlib.blake2b(f"{project_id}|{message_id}".encode(), digest_size=16).hexdigest()


class Normalizer:
    """Turns decoded JSON objects into canonical rows (plus identity links)."""

    def __init__(self, *, geo: GeoResolver, hasher: IpHasher) -> None:
        self.geo = geo
        self.hasher = hasher
        # (project, ip, day) -> geo + IP hash columns: a visitor's events repeat them.
        self._ip_cache: dict[tuple[str, str, str], dict[str, str]] = {}
        self._spare_ids: list[str] = []
        self._address_tables: dict[tuple[str, str], dict[str, tuple[str, ...]]] = {}

    def _new_message_id(self) -> str:
        """`new_message_id()`, drawn 256 at a time: one random number per 256 events."""
        if not self._spare_ids:
            self._refill_ids()
        return self._spare_ids.pop()

    def _refill_ids(self) -> None:
        # 256 ids of 128 random bits in hex, split in C (faster than formatting one big int).
        self._spare_ids.extend(_ids.randbytes(4096).hex(" ", 16).split(" "))

    def _ip_columns(self, project_id: str, ip: str, day: str) -> dict[str, str]:
        key = (project_id, ip, day)
        found = self._ip_cache.get(key)
        if found is None:
            if len(self._ip_cache) >= 50_000:
                self._ip_cache.clear()
            geo = self.geo.lookup(ip)
            found = {"ip_hash": self.hasher.hash(ip, project_id=project_id, day=day)}
            if geo.country:
                found["country"] = geo.country
            if geo.region:
                found["region"] = geo.region
            if geo.city:
                found["city"] = geo.city
            self._ip_cache[key] = found
        return found

    def _addresses(self, project_id: str, day: str) -> dict[str, tuple[str, ...]]:
        """Client address -> the address columns (`block.ADDRESS_COLUMNS`) of one project's
        day, as `native` stores them (with `ip` left empty), cached."""
        key = (project_id, day)
        table = self._address_tables.get(key)
        if table is None:
            if len(self._address_tables) >= 1_000:
                self._address_tables.clear()
            table = self._address_tables[key] = {"": NO_ADDRESS}
        elif len(table) >= 50_000:
            table.clear()
            table[""] = NO_ADDRESS
        return table

    def _address_values(self, project_id: str, ip: str, day: str) -> tuple[str, ...]:
        found = self._ip_columns(project_id, ip, day)
        return (
            found["ip_hash"],
            found.get("country", ""),
            found.get("region", ""),
            found.get("city", ""),
            "",
        )

    def native(
        self,
        item: Any,
        meta: RequestMeta,
        *,
        batch_context: dict[str, Any] | None = None,
        day: str = "",
    ) -> tuple[Row, list[tuple[str, str]]]:
        """Validate and enrich one native event; raise `InvalidEvent` naming every bad field."""
        if not isinstance(item, dict):
            raise InvalidEvent(["event: must be a JSON object"])
        errors: list[str] = []
        get = item.get

        kind = get("type", "track")
        if kind is None or kind == "":
            errors.append("type: required")
            kind = "track"
        elif kind.__class__ is not str or kind not in EVENT_TYPES:  # ({} is unhashable)
            errors.append(
                f"type: must be one of {', '.join(sorted(EVENT_TYPES))} (got {str(kind)[:40]!r})"
            )
            kind = "track"
        name = TYPE_EVENT_NAMES.get(kind)  # page, screen, ... have fixed names
        if name is None:
            name = get("event")
        if name is None or name == "":
            errors.append(f"event: required for {kind} events")
            name = ""
        elif not isinstance(name, str):
            errors.append("event: must be a string")
            name = ""
        elif len(name) > MAX_NAME:
            errors.append(f"event: longer than {MAX_NAME} characters")

        value = get("user_id")
        user_id = (
            value
            if value.__class__ is str and len(value) <= MAX_ID
            else _id(value, "user_id", errors)
        )
        value = get("anonymous_id")
        anonymous_id = (
            value
            if value.__class__ is str and len(value) <= MAX_ID
            else _id(value, "anonymous_id", errors)
        )
        aliases: list[tuple[str, str]] = []
        if kind == "alias":
            previous_id = _id(get("previous_id"), "previous_id", errors)
            if not previous_id:
                errors.append("previous_id: required for alias events")
            if not user_id:
                errors.append("user_id: required for alias events")
            if previous_id and user_id and previous_id != user_id:
                aliases.append((previous_id, user_id))
        elif not user_id and not anonymous_id and kind != "api":
            errors.append("user_id or anonymous_id: one of them is required")
        if user_id and anonymous_id and anonymous_id != user_id:
            aliases.append((anonymous_id, user_id))

        project_id = meta.project_id
        value = get("message_id")
        message_id = (
            value
            if value.__class__ is str and 0 < len(value) <= MAX_MESSAGE_ID
            else _id(value, "message_id", errors, MAX_MESSAGE_ID)
        )
        if message_id:
            event_id = event_uuid(project_id, message_id)
        else:  # a random id is a UUID already: it is its own event id
            message_id = event_id = self._new_message_id()

        received = meta.received_ms
        ts_raw = get("timestamp")
        ts_ms: int | None = None
        if ts_raw is not None:
            try:
                ts_ms = parse_timestamp(ts_raw, "timestamp")
            except InvalidEvent as exc:
                errors.extend(exc.errors)
        sent_ms = meta.sent_at_ms
        sent_raw = get("sent_at")
        if sent_raw is not None:
            try:
                sent_ms = parse_timestamp(sent_raw, "sent_at")
            except InvalidEvent as exc:
                errors.extend(exc.errors)
        timestamp = resolve_timestamp(ts_ms, sent_ms, received)
        if timestamp > received + MAX_FUTURE_MS:
            errors.append("timestamp: more than one day in the future (check the client clock)")
        elif timestamp < 0:
            errors.append("timestamp: before 1970-01-01")

        # `x.__class__ is dict` first: decoded JSON objects are plain dicts, and the check is
        # cheaper than a call to `_obj` for each of the event's objects.
        properties = get("properties")
        if properties is not None and properties.__class__ is not dict:
            properties = _obj(properties, "properties", errors)
        traits = get("traits")
        if traits is not None and traits.__class__ is not dict:
            traits = _obj(traits, "traits", errors)
        context = get("context")
        if context is not None and context.__class__ is not dict:
            context = _obj(context, "context", errors)
        if batch_context:
            context = {**batch_context, **context} if context else batch_context

        row: Row = {
            "project_id": project_id,
            "event_id": event_id,
            "message_id": message_id,
            "type": kind,
            "event": name,
            "timestamp": timestamp,
            "received_at": received,
            "distinct_id": user_id or anonymous_id,
        }
        if user_id:
            row["user_id"] = user_id
        if anonymous_id:
            row["anonymous_id"] = anonymous_id
        session_id = get("session_id")
        if session_id is not None:
            row["session_id"] = (
                session_id
                if session_id.__class__ is str and len(session_id) <= MAX_ID
                else _id(session_id, "session_id", errors)
            )

        user_agent = meta.user_agent
        ip = meta.ip
        page: dict[str, Any] | None = None
        campaign: dict[str, Any] | None = None
        if context:
            page = context.get("page")
            if page is not None and page.__class__ is not dict:
                page = _obj(page, "context.page", errors)
            campaign = context.get("campaign")
            if campaign is not None and campaign.__class__ is not dict:
                campaign = _obj(campaign, "context.campaign", errors)
            ua = context.get("userAgent")
            if isinstance(ua, str) and ua:
                user_agent = ua
            ctx_ip = context.get("ip")
            if isinstance(ctx_ip, str) and ctx_ip:
                ip = ctx_ip[:64]
            locale = context.get("locale")
            if isinstance(locale, str) and locale:
                row["locale"] = locale[:32]
            screen = context.get("screen")
            if screen is not None and screen.__class__ is not dict:
                screen = _obj(screen, "context.screen", errors)
            if screen:
                width, height = screen.get("width"), screen.get("height")
                if width is not None:
                    row["screen_width"] = (
                        width
                        if width.__class__ is int and 0 <= width <= 65535
                        else _uint(width, "context.screen.width", errors, 65535)
                    )
                if height is not None:
                    row["screen_height"] = (
                        height
                        if height.__class__ is int and 0 <= height <= 65535
                        else _uint(height, "context.screen.height", errors, 65535)
                    )
            library = context.get("library")
            if isinstance(library, dict):
                value = library.get("name")
                row["library"] = (
                    value if value.__class__ is str and len(value) <= 64 else _text(value, 64)
                )
                value = library.get("version")
                row["library_version"] = (
                    value if value.__class__ is str and len(value) <= 32 else _text(value, 32)
                )

        # Page fields: context.page, or the page call's own properties (Segment puts them there).
        url = referrer = title = path = ""
        if page:
            value = page.get("url")
            url = value if value.__class__ is str and len(value) <= MAX_TEXT else _text(value)
            value = page.get("referrer")
            referrer = value if value.__class__ is str and len(value) <= MAX_TEXT else _text(value)
            value = page.get("title")
            title = value if value.__class__ is str and len(value) <= 1024 else _text(value, 1024)
            value = page.get("path")
            if value is not None:
                path = _text(value, 2048)
        if (kind == "page" or kind == "screen") and properties:
            url = url or _text(properties.get("url"))
            referrer = referrer or _text(properties.get("referrer"))
            title = title or _text(properties.get("title"), 1024)
            path = path or _text(properties.get("path"), 2048)
        page_name = get("name")
        if not title and isinstance(page_name, str):
            title = page_name[:1024]
        if url:
            row.update(url_columns(url))
            if path:
                row["path"] = path
        elif path:
            row["path"] = path
        if title:
            row["title"] = title
        if referrer:
            row["referrer"] = referrer
            row["referrer_domain"] = referrer_domain(referrer)
        if campaign:
            for key, column in (
                ("source", "utm_source"),
                ("medium", "utm_medium"),
                ("name", "utm_campaign"),
                ("term", "utm_term"),
                ("content", "utm_content"),
            ):
                value = campaign.get(key)
                if value and column not in row:
                    row[column] = _text(value, 256)

        if user_agent:
            row.update(user_agent_columns(user_agent))
        elif context:
            row.update(app_device_columns(context))  # an app's SDK sends no user agent
        if ip:
            row.update(self._ip_columns(project_id, ip, day or meta.day))
            if meta.store_raw_ip:
                row["ip"] = ip

        api = get("api")
        if api is not None or kind == "api":
            self._api(api, row, errors)
        web3 = get("web3")
        if web3 is not None or kind == "web3":
            self._web3(web3, row, errors, required=kind == "web3")

        if kind == "identify" or kind == "group":
            extra: dict[str, Any] = dict(properties) if properties else {}
            if traits:
                extra["$traits"] = traits
            if kind == "group":
                group_id = _id(get("group_id"), "group_id", errors)
                if not group_id:
                    errors.append("group_id: required for group events")
                extra["$group_id"] = group_id
            properties = extra
        if properties:
            try:
                encoded = compact_json(properties)
            except (TypeError, ValueError) as exc:
                errors.append(f"properties: cannot be stored as JSON ({exc})")
            else:
                if too_deep(encoded):
                    errors.append(
                        f"properties: nested deeper than {MAX_DEPTH} levels (traits of an "
                        "identify count as one level more)"
                    )
                row["properties"] = encoded.decode()

        if errors:
            raise InvalidEvent(errors)
        return row, aliases

    def block(
        self,
        items: list[Any],
        meta: RequestMeta,
        *,
        batch_context: dict[str, Any] | None = None,
        day: str = "",
    ) -> tuple[EventBlock, list[tuple[str, str]], list[dict[str, Any]]]:
        """Validate and enrich a request's events: (the accepted block, links, rejections).

        Rejections are `{"index": i, "errors": [...]}` by position in `items`.
        """
        project_id = meta.project_id
        received = meta.received_ms
        day = day or meta.day
        block = EventBlock(project_id, received)
        rejected: list[dict[str, Any]] = []
        if len(items) < FAST_PATH_MIN_EVENTS:
            aliases: list[tuple[str, str]] = []
            # A few events: rows are cheaper than setting up (and later merging) columns.
            self._rows(items, meta, batch_context, day, block, aliases, rejected)
            return block, aliases, rejected
        header_agent = meta.user_agent
        header_ip = meta.ip
        request_sent = meta.sent_at_ms
        accepted: list[Accepted] = []
        accept = accepted.append
        positions: list[int] = []
        add_position = positions.append
        others: list[int] = []
        add_other = others.append
        dumps = orjson.dumps

        for position, item in enumerate(items):
            # -- the fast path: every check below mirrors one in `native`; anything else
            # (other types, unusual values, any error) leaves it for `native`.
            if item.__class__ is dict:
                get = item.get
                name: Any = None
                kind = get("type", "track")
                if kind == "track":
                    name = get("event")
                    if name.__class__ is not str or not 0 < len(name) <= MAX_NAME:
                        kind = None
                elif kind == "page":
                    name = "$pageview"
                elif kind == "screen":
                    name = "$screen"
                else:
                    kind = None
                user_id = get("user_id")
                if user_id is None:
                    user_id = ""
                elif user_id.__class__ is not str or len(user_id) > MAX_ID:
                    kind = None
                anonymous_id = get("anonymous_id")
                if anonymous_id is None:
                    anonymous_id = ""
                elif anonymous_id.__class__ is not str or len(anonymous_id) > MAX_ID:
                    kind = None
                message_id = get("message_id")
                if message_id is None:
                    message_id = ""
                elif message_id.__class__ is not str or len(message_id) > MAX_MESSAGE_ID:
                    kind = None
                session_id = get("session_id")
                if session_id is None:
                    session_id = ""
                elif session_id.__class__ is not str or len(session_id) > MAX_ID:
                    kind = None
                properties = get("properties")
                if properties is not None and properties.__class__ is not dict:
                    kind = None
                context = get("context")
                if context is not None and context.__class__ is not dict:
                    kind = None
                traits = get("traits")
                if (
                    (traits is not None and traits.__class__ is not dict)
                    or get("api") is not None
                    or get("web3") is not None
                    or not (user_id or anonymous_id)
                ):
                    kind = None
                if kind is not None:
                    timestamp = fast_timestamp(
                        get("timestamp"), get("sent_at"), request_sent, received
                    )
                    if timestamp is None:
                        kind = None
                if kind is not None:
                    if batch_context:
                        context = {**batch_context, **context} if context else batch_context
                    user_agent = header_agent
                    ip = header_ip
                    locale = title = url = referrer = path = library = library_version = ""
                    width = height = 0
                    if context:
                        # Each field is checked inline, not through a helper: this runs for
                        # every event of a batch, and anything unexpected (a wrong type) only
                        # sends the event down the row path, which gives the error message.
                        page = context.get("page")
                        if page is not None and page.__class__ is not dict:
                            kind = None
                        elif page:
                            url = page.get("url", "")
                            if url is None:
                                url = ""
                            elif url.__class__ is not str:
                                kind = None
                            elif len(url) > MAX_TEXT:
                                url = url[:MAX_TEXT]
                            referrer = page.get("referrer", "")
                            if referrer is None:
                                referrer = ""
                            elif referrer.__class__ is not str:
                                kind = None
                            elif len(referrer) > MAX_TEXT:
                                referrer = referrer[:MAX_TEXT]
                            title = page.get("title", "")
                            if title is None:
                                title = ""
                            elif title.__class__ is not str:
                                kind = None
                            elif len(title) > 1024:
                                title = title[:1024]
                            path = page.get("path", "")
                            if path is None:
                                path = ""
                            elif path.__class__ is not str:
                                kind = None
                            elif len(path) > 2048:
                                path = path[:2048]
                        campaign = context.get("campaign")
                        if campaign is not None and (campaign.__class__ is not dict or campaign):
                            kind = None
                        value = context.get("userAgent")
                        if isinstance(value, str) and value:
                            user_agent = value
                        elif not user_agent and ("os" in context or "device" in context):
                            kind = None  # an app's OS and device (`app_device_columns`)
                        value = context.get("ip")
                        if isinstance(value, str) and value:
                            ip = value[:64]
                        value = context.get("locale")
                        if isinstance(value, str) and value:
                            locale = value[:32]
                        screen = context.get("screen")
                        if screen is not None and screen.__class__ is not dict:
                            kind = None
                        elif screen:
                            width = screen.get("width", 0)
                            if width is None:
                                width = 0
                            elif width.__class__ is not int or not 0 <= width <= 65535:
                                kind = None
                            height = screen.get("height", 0)
                            if height is None:
                                height = 0
                            elif height.__class__ is not int or not 0 <= height <= 65535:
                                kind = None
                        value = context.get("library")
                        if isinstance(value, dict):
                            library = value.get("name", "")
                            if library is None:
                                library = ""
                            elif library.__class__ is not str:
                                kind = None
                            elif len(library) > 64:
                                library = library[:64]
                            library_version = value.get("version", "")
                            if library_version is None:
                                library_version = ""
                            elif library_version.__class__ is not str:
                                kind = None
                            elif len(library_version) > 32:
                                library_version = library_version[:32]
                    if kind is not None and properties:
                        if kind != "track":  # Segment puts a page call's fields there
                            url = url or _text(properties.get("url"))
                            referrer = referrer or _text(properties.get("referrer"))
                            title = title or _text(properties.get("title"), 1024)
                            path = path or _text(properties.get("path"), 2048)
                        try:
                            text = dumps(properties)
                        except (TypeError, orjson.JSONEncodeError):
                            text = b""
                            kind = None
                        # Maybe nested too deeply: `native` measures it and says so.
                        if text.count(b"{") + text.count(b"[") > MAX_DEPTH:
                            kind = None
                        encoded: str | bytes = text
                    else:
                        encoded = ""
                if kind is not None:
                    if not title:
                        page_name = get("name")
                        if isinstance(page_name, str):
                            title = page_name[:1024]
                    accept(
                        (
                            message_id,
                            kind,
                            name,
                            timestamp,
                            user_id,
                            anonymous_id,
                            session_id,
                            title,
                            locale,
                            width,
                            height,
                            library,
                            library_version,
                            encoded,
                            url,
                            path,
                            referrer,
                            user_agent,
                            ip,
                        )
                    )
                    add_position(position)
                    continue
            # -- everything else: the full rules, with their error messages.
            add_other(position)
        links = self._fill(block, accepted, positions, meta, day)
        if others:
            links = self._others(others, items, links, meta, batch_context, day, block, rejected)
        return block, [link for _, link in links], rejected

    def typed_block(
        self,
        events: Sequence[Event | SegmentEvent],
        dicts: Callable[[], list[Any]],
        meta: RequestMeta,
        *,
        day: str = "",
    ) -> tuple[EventBlock, list[tuple[str, str]], list[dict[str, Any]]]:
        """`block` for the events of a body decoded by `typed` (no batch context).

        msgspec has checked every field's type and the ids' lengths; what is left are the
        checks across fields and values. An event the fast path does not take goes through
        `native` as its dict: `dicts()` decodes the body's events again (only when needed).
        """
        project_id = meta.project_id
        received = meta.received_ms
        day = day or meta.day
        block = EventBlock(project_id, received)
        rejected: list[dict[str, Any]] = []
        header_agent = meta.user_agent
        header_ip = meta.ip
        request_sent = meta.sent_at_ms
        accepted: list[Accepted] = []
        accept = accepted.append
        positions: list[int] = []
        add_position = positions.append
        others: list[int] = []
        add_other = others.append

        for position, item in enumerate(events):
            kind = item.type
            name: Any = None
            if kind == "track":
                name = item.event
                if not name or len(name) > MAX_NAME:
                    add_other(position)
                    continue
            elif kind == "page":
                name = "$pageview"
            elif kind == "screen":
                name = "$screen"
            else:
                add_other(position)
                continue
            user_id = item.user_id or ""
            anonymous_id = item.anonymous_id or ""
            # The raw fields hold the JSON text of the value (empty when it was left out).
            encoded = bytes(item.properties)
            if encoded and encoded[0] != 123:  # "{"
                if encoded != b"null":
                    add_other(position)
                    continue
                encoded = b""
            elif len(encoded) < 8 and encoded.translate(None, b" \t\r\n") == b"{}":
                encoded = b""
            elif encoded.count(b"{") + encoded.count(b"[") > MAX_DEPTH:
                add_other(position)  # maybe nested too deeply: `native` measures it
                continue
            if (
                not (user_id or anonymous_id)
                or (encoded and kind != "track")  # Segment puts a page call's fields there
                or (item.traits and bytes(item.traits)[0] not in _OBJECT_OR_NULL)
                or (item.api and bytes(item.api) != b"null")
                or (item.web3 and bytes(item.web3) != b"null")
            ):
                add_other(position)
                continue
            stamp = item.timestamp
            if stamp is None:
                stamp = item.original_timestamp
            timestamp = fast_timestamp(stamp, item.sent_at, request_sent, received)
            if timestamp is None:
                add_other(position)
                continue
            user_agent = header_agent
            ip = header_ip
            session_id = item.session_id or ""
            locale = title = url = referrer = path = library = library_version = ""
            width = height = 0
            context = item.context
            if context is not None:
                campaign = context.campaign
                if campaign and bytes(campaign) not in (b"null", b"{}"):
                    add_other(position)
                    continue
                page = context.page
                if page is not None:
                    url = (page.url or "")[:MAX_TEXT]
                    referrer = (page.referrer or "")[:MAX_TEXT]
                    title = (page.title or "")[:1024]
                    path = (page.path or "")[:2048]
                if context.userAgent:
                    user_agent = context.userAgent
                elif not user_agent and (context.os or context.device):
                    add_other(position)  # an app's OS and device (`app_device_columns`)
                    continue
                if context.ip:
                    ip = context.ip[:64]
                if context.locale:
                    locale = context.locale[:32]
                if item.session_id is None:
                    number = context.sessionId
                    if number is not None:
                        session_id = number if number.__class__ is str else str(number)
                screen = context.screen
                if screen is not None:
                    width = screen.width or 0
                    height = screen.height or 0
                lib = context.library
                if lib is not None:
                    library = (lib.name or "")[:64]
                    library_version = (lib.version or "")[:32]
            if not title and item.name:
                title = item.name[:1024]
            accept(
                (
                    item.message_id,
                    kind,
                    name,
                    timestamp,
                    user_id,
                    anonymous_id,
                    session_id,
                    title,
                    locale,
                    width,
                    height,
                    library,
                    library_version,
                    encoded,
                    url,
                    path,
                    referrer,
                    user_agent,
                    ip,
                )
            )
            add_position(position)
        links = self._fill(block, accepted, positions, meta, day)
        if others:
            links = self._others(others, dicts(), links, meta, None, day, block, rejected)
        return block, [link for _, link in links], rejected

    def _fill(
        self,
        block: EventBlock,
        accepted: list[Accepted],
        positions: list[int],
        meta: RequestMeta,
        day: str,
    ) -> list[tuple[int, tuple[str, str]]]:
        """The fast path's accepted events into `block`'s columns: each column at once (a
        transpose in C), then ids, keys and what is derived per distinct input. Returns each
        identity link with the position of its event."""
        columns = block.columns = Columns()
        if not accepted:
            return []
        (
            message_ids,
            columns.type,
            columns.event,
            columns.timestamp,
            user_ids,
            anonymous_ids,
            columns.session_id,
            columns.title,
            columns.locale,
            columns.screen_width,
            columns.screen_height,
            columns.library,
            columns.library_version,
            columns.properties,
            urls,
            paths,
            referrers,
            user_agents,
            ips,
        ) = map(list, zip(*accepted, strict=True))
        project_id = block.project_id
        prefix = f"{project_id}|"
        keys = block.keys
        key_positions = block.key_positions
        spare_ids = self._spare_ids
        event_ids: list[str] = []
        add_event_id = event_ids.append
        for number, message_id in enumerate(message_ids):
            if message_id:
                add_event_id(event_uuid(project_id, message_id))
                keys.append(prefix + message_id)
                key_positions.append(number)
            else:
                if not spare_ids:
                    self._refill_ids()
                message_ids[number] = generated = spare_ids.pop()
                add_event_id(generated)
        columns.message_id = message_ids
        columns.event_id = event_ids
        columns.user_id = user_ids
        columns.anonymous_id = anonymous_ids
        columns.distinct_id = [u or a for u, a in zip(user_ids, anonymous_ids, strict=True)]

        page_index = columns.page.index
        page_values = columns.page.values
        add_page = columns.page.positions.append
        referrer_index = columns.referrer.index
        referrer_values = columns.referrer.values
        add_referrer = columns.referrer.positions.append
        agent_index = columns.agent.index
        agent_values = columns.agent.values
        add_agent = columns.agent.positions.append
        addresses = self._addresses(project_id, day)
        address_values = self._address_values
        add_address = columns.address.append
        store_raw_ip = meta.store_raw_ip
        for url, path, referrer, user_agent, ip in zip(
            urls, paths, referrers, user_agents, ips, strict=True
        ):
            key = url if not path else (url, path)
            index = page_index.get(key)
            if index is None:
                index = page_index[key] = len(page_values)
                page_values.append(_page_values(url, path))
            add_page(index)
            index = referrer_index.get(referrer)
            if index is None:
                index = referrer_index[referrer] = len(referrer_values)
                referrer_values.append((referrer, referrer_domain(referrer)))
            add_referrer(index)
            index = agent_index.get(user_agent)
            if index is None:
                index = agent_index[user_agent] = len(agent_values)
                agent_values.append(_agent_values(user_agent))
            add_agent(index)
            address = addresses.get(ip)
            if address is None:
                address = addresses[ip] = address_values(project_id, ip, day)
            add_address((*address[:4], ip) if store_raw_ip else address)
        return [
            (position, (anonymous_id, user_id))
            for position, user_id, anonymous_id in zip(
                positions, user_ids, anonymous_ids, strict=True
            )
            if user_id and anonymous_id and anonymous_id != user_id
        ]

    def _others(
        self,
        others: list[int],
        items: Sequence[Any],
        links: list[tuple[int, tuple[str, str]]],
        meta: RequestMeta,
        batch_context: dict[str, Any] | None,
        day: str,
        block: EventBlock,
        rejected: list[dict[str, Any]],
    ) -> list[tuple[int, tuple[str, str]]]:
        """`native` for the events at `others` (ascending positions in `items`) that the fast
        path left; returns every link, the fast path's `links` too, in the events' order
        (the dict path's order: for one id, the last link wins)."""
        for position in others:
            found: list[tuple[str, str]] = []
            item = items[position]
            self._rows((item,), meta, batch_context, day, block, found, rejected, position)
            links += [(position, link) for link in found]
        links.sort(key=lambda entry: entry[0])  # stable: one event's links keep their order
        return links

    def _rows(
        self,
        items: Sequence[Any],
        meta: RequestMeta,
        batch_context: dict[str, Any] | None,
        day: str,
        block: EventBlock,
        aliases: list[tuple[str, str]],
        rejected: list[dict[str, Any]],
        first: int = 0,
    ) -> None:
        """`native` for each of `items` (positions from `first`): rows into `block`."""
        rows = block.rows
        prefix = f"{meta.project_id}|"
        for position, item in enumerate(items, first):
            try:
                row, links = self.native(item, meta, batch_context=batch_context, day=day)
            except InvalidEvent as exc:
                rejected.append({"index": position, "errors": exc.errors})
                continue
            if _client_id(item):
                block.keys.append(prefix + row["message_id"])
                block.key_positions.append(~len(rows))
            rows.append(row)
            if links:
                aliases.extend(links)

    @staticmethod
    def _api(api: Any, row: Row, errors: list[str]) -> None:
        if not isinstance(api, dict):
            errors.append("api: required object for api events (method, route, status, ...)")
            return
        method = api.get("method")
        if not isinstance(method, str) or method.upper() not in _HTTP_METHODS:
            errors.append("api.method: must be an HTTP method such as GET or POST")
        else:
            row["http_method"] = method.upper()
        route = api.get("route")
        if not isinstance(route, str) or not route:
            errors.append("api.route: required route template such as /items/{id}")
        else:
            row["http_route"] = route[:512]
        status = api.get("status")
        if isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 599:
            errors.append("api.status: must be an HTTP status code between 100 and 599")
        else:
            row["http_status"] = status
        duration = api.get("duration_ms")
        if (
            isinstance(duration, bool)
            or not isinstance(duration, int | float)
            or not 0 <= duration < 1e9
        ):
            errors.append("api.duration_ms: must be a non-negative number of milliseconds")
        else:
            row["duration_ms"] = float(duration)
        for key, column in (
            ("request_bytes", "request_bytes"),
            ("response_bytes", "response_bytes"),
        ):
            value = api.get(key)
            if value is not None:
                row[column] = _uint(value, f"api.{key}", errors)

    @staticmethod
    def _web3(web3: Any, row: Row, errors: list[str], *, required: bool) -> None:
        if not isinstance(web3, dict):
            if required or web3 is not None:
                errors.append("web3: must be an object (chain_id, wallet, tx_hash, value, ...)")
            return
        chain_id = web3.get("chain_id")
        if chain_id is not None:
            value = _uint(chain_id, "web3.chain_id", errors)
            if value:
                row["chain_id"] = value
        wallet = _address(web3.get("wallet"), "web3.wallet", errors)
        if wallet:
            row["wallet_address"] = wallet
        contract = _address(web3.get("contract"), "web3.contract", errors)
        if contract:
            row["contract_address"] = contract
        tx_hash = web3.get("tx_hash")
        if tx_hash is not None and tx_hash != "":
            if not isinstance(tx_hash, str) or not _HEX64.match(tx_hash):
                errors.append(
                    "web3.tx_hash: must be a 32-byte hex hash (0x followed by 64 hex digits)"
                )
            else:
                row["tx_hash"] = tx_hash.lower()
        amount = web3.get("value")
        if amount is not None and amount != "":
            if isinstance(amount, int) and not isinstance(amount, bool) and amount >= 0:
                amount = str(amount)
            if not isinstance(amount, str) or not _DIGITS.match(amount):
                errors.append(
                    "web3.value: must be a non-negative integer in the smallest unit (wei) "
                    "as a decimal string"
                )
            elif int(amount) > MAX_UINT256:
                errors.append("web3.value: larger than 2**256 - 1")
            else:
                row["tx_value"] = amount
        token = web3.get("token")
        if token is not None:
            row["token_symbol"] = _text(token, 32)
        status = web3.get("status")
        if status is not None:
            row["tx_status"] = _text(status, 32)


def _client_id(item: Any) -> bool:
    """Whether the client sent the message id (one the server generated needs no dedup)."""
    value = item.get("message_id") if isinstance(item, dict) else None
    return value is not None and value != ""


@lru_cache(maxsize=10_000)
def _page_values(url: str, path: str) -> tuple[str, ...]:
    """The page columns (`block.PAGE_COLUMNS`) of a URL and an explicit path, as `native`."""
    columns = url_columns(url) if url else {}
    return (
        columns.get("url", ""),
        columns.get("host", ""),
        path or columns.get("path", ""),
        columns.get("utm_source", ""),
        columns.get("utm_medium", ""),
        columns.get("utm_campaign", ""),
        columns.get("utm_term", ""),
        columns.get("utm_content", ""),
        columns.get("click_id", ""),
    )


@lru_cache(maxsize=10_000)
def _agent_values(user_agent: str) -> tuple[Any, ...]:
    """The user-agent columns (`block.AGENT_COLUMNS`) of a User-Agent, as `native` stores."""
    if not user_agent:
        return NO_AGENT
    columns = user_agent_columns(user_agent)
    return (
        columns["browser"],
        columns["browser_version"],
        columns["os"],
        columns["os_version"],
        columns["device_type"],
        columns.get("is_bot", 0),
    )


_SEGMENT_KEYS = {
    "userId": "user_id",
    "anonymousId": "anonymous_id",
    "messageId": "message_id",
    "previousId": "previous_id",
    "groupId": "group_id",
    "sentAt": "sent_at",
}


def from_segment(item: Any, default_type: str | None) -> Any:
    """Rename a Segment message's camelCase fields to the native names (shallow copy)."""
    if not isinstance(item, dict):
        return item
    out = {_SEGMENT_KEYS.get(key, key): value for key, value in item.items()}
    if default_type is not None:
        out["type"] = default_type
    elif "type" not in out:
        out["type"] = ""  # reported by the normaliser: a message must say its type
    if out.get("timestamp") is None and "originalTimestamp" in out:
        # RudderStack's SDKs send the client's clock only as originalTimestamp (Segment's
        # spec has both); corrected with sentAt like a timestamp.
        out["timestamp"] = out.pop("originalTimestamp")
    context = out.get("context")
    if isinstance(context, dict) and out.get("session_id") is None:
        # RudderStack's web and mobile SDKs number their sessions in the context.
        # (Ignored, not an error, when it is no id: as the typed path skips it.)
        number = context.get("sessionId")
        if number.__class__ is int and -(2**63) <= number < 2**64:
            out["session_id"] = str(number)
        elif number.__class__ is str and len(number) <= MAX_ID:
            out["session_id"] = number
    if out.get("type") == "identify" and "traits" not in out and isinstance(context, dict):
        traits = context.get("traits")
        if isinstance(traits, dict):
            out["traits"] = traits
    # Segment libraries put web3/api fields nowhere standard; they stay in properties.
    out.pop("api", None)
    out.pop("web3", None)
    return out
