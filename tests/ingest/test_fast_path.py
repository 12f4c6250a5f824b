"""The normaliser's fast path stores exactly what `Normalizer.native` stores, event by event.

Each generated event goes through `Normalizer.block` twice: as a request the fast path
handles (>= FAST_PATH_MIN_EVENTS events) and with the fast path switched off (every event
through `native`, the rules' reference). The Arrow tables the writer would insert, the
rejections (index and message) and the identity links must be the same.
"""

from __future__ import annotations

import datetime as dt
import json
import random
import re
import uuid
from typing import Any

import msgspec
import orjson
import pytest

import sextant.ingest.normalize as normalize
from sextant.ingest import typed
from sextant.ingest.block import COLUMN_DEFAULTS, build_table
from sextant.ingest.enrich import GeoResolver, IpHasher
from sextant.ingest.event import EVENT_COLUMNS
from sextant.ingest.normalize import FAST_PATH_MIN_EVENTS, Normalizer, RequestMeta
from sextant.ingest.prepare import (
    SEGMENT_MAX_EVENT_BYTES,
    prepare_events,
    prepare_native_body,
    prepare_segment_batch,
)
from sextant.ingest.typed import decode_batch

CHROME = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36"
)
BOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
NOW_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z
PROJECT = "0b9a1c6e-64a4-4c36-9d7a-1f2d3c4b5a69"
ABSENT = object()
HEX32 = re.compile(r"^[0-9a-f]{32}$")


@pytest.fixture(scope="module")
def normalizer() -> Normalizer:
    return Normalizer(geo=GeoResolver(), hasher=IpHasher("s" * 40))


def meta(**overrides: Any) -> RequestMeta:
    values: dict[str, Any] = {
        "project_id": PROJECT,
        "store_raw_ip": False,
        "received_ms": NOW_MS,
        "ip": "81.2.69.160",
        "user_agent": "",
        "sent_at_ms": None,
    }
    values.update(overrides)
    return RequestMeta(**values)


def both_ways(
    normalizer: Normalizer,
    items: list[Any],
    request: RequestMeta,
    monkeypatch: pytest.MonkeyPatch,
    batch_context: dict[str, Any] | None = None,
) -> tuple[Any, Any]:
    fast = normalizer.block(items, request, batch_context=batch_context)
    with monkeypatch.context() as patch:
        patch.setattr(normalize, "FAST_PATH_MIN_EVENTS", 10**9)
        reference = normalizer.block(items, request, batch_context=batch_context)
    return fast, reference


def big_int(item: Any) -> bool:
    """Whether an event's properties hold an integer beyond 64 bits (orjson writes none)."""
    properties = item.get("properties") if isinstance(item, dict) else None
    return isinstance(properties, dict) and "big" in properties


def fits_typed(item: Any) -> bool:
    try:
        msgspec.json.decode(json.dumps(item), type=typed.Event)
    except msgspec.ValidationError:
        return False
    return True


def typed_way(
    normalizer: Normalizer,
    items: list[Any],
    request: RequestMeta,
    batch_context: dict[str, Any] | None = None,
) -> tuple[Any, bool]:
    """The same request as a native body through `prepare_native_body`: (what it gives,
    whether msgspec's typed path took it)."""
    payload: dict[str, Any] = {"batch": items}
    if batch_context is not None:
        payload["context"] = batch_context
    # Compact and unescaped, as orjson writes it: the typed path keeps properties as sent.
    body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
    took = decode_batch(body) is not None
    block, links, rejected, _ = prepare_native_body(normalizer, body, request, request.day, 1000)
    return (block, links, rejected), took


def differences(rows: list[dict[str, Any]], ref_rows: list[dict[str, Any]]) -> list[Any]:
    """(row, column, value, reference value) wherever two lists of rows differ."""
    assert len(rows) == len(ref_rows)
    return [
        (number, name, row[name], ref[name])
        for number, (row, ref) in enumerate(zip(rows, ref_rows, strict=True))
        for name in row
        if row[name] != ref[name]
    ]


def stored(block: Any) -> list[dict[str, Any]]:
    """The rows a block inserts, every column present (what ClickHouse would fill in)."""
    table = build_table([block])
    return [] if table is None else rows_of(table)


def rows_of(table: Any) -> list[dict[str, Any]]:
    """A table's rows with every column (ClickHouse's defaults for those it lacks)."""
    out = []
    for row in table.to_pylist():
        full = {name: row.get(name, COLUMN_DEFAULTS.get(name, "")) for name in EVENT_COLUMNS}
        for name in ("timestamp", "received_at"):
            if isinstance(full[name], dt.datetime):
                full[name] = round(full[name].timestamp() * 1000)
        out.append(full)
    return out


def choice(rng: random.Random, *options: Any) -> Any:
    return options[rng.randrange(len(options))]


def put(target: dict[str, Any], key: str, value: Any) -> None:
    if value is not ABSENT:
        target[key] = value


def random_event(rng: random.Random) -> Any:
    """An event of a common shape most of the time, with one odd field now and then."""
    if rng.random() < 0.02:
        return choice(rng, "not an object", 5, None, [1, 2])
    # Half of the events get one odd value (in one field picked at random), so each odd
    # value is tried on its own; the others only well-formed ones.
    odd_field = rng.randrange(1, 30) if rng.random() < 0.5 else -1
    fields = [0]

    def value(good: tuple[Any, ...], bad: tuple[Any, ...] = ()) -> Any:
        fields[0] += 1
        if fields[0] == odd_field and bad:
            return choice(rng, *bad)
        return choice(rng, *good)

    event: dict[str, Any] = {}
    put(
        event,
        "type",
        value(
            (ABSENT, "track", "page", "screen"),
            ("identify", "alias", "api", "web3", "group", "", None, 5, "bogus"),
        ),
    )
    put(event, "event", value(("add_to_cart", "Signup", "e" * 200), ("", None, 5, "e" * 201)))
    put(event, "user_id", value((ABSENT, None, "", "u-1", "u-2"), ("u" * 257, 7, True)))
    put(event, "anonymous_id", value(("a-1", "a-2", "u-1"), (ABSENT, None, "", "a" * 257, 3.5)))
    put(
        event,
        "message_id",
        value(
            (
                ABSENT,
                None,
                "",
                f"m-{rng.randrange(10**9)}",
                str(uuid.UUID(int=rng.getrandbits(128))),
            ),
            ("m" * 201, 12, False),
        ),
    )
    put(event, "session_id", value((ABSENT, None, "", "s-1"), (5, "s" * 257)))
    stamp = dt.datetime.fromtimestamp(NOW_MS / 1000 - rng.randrange(10**6), dt.UTC)
    put(
        event,
        "timestamp",
        value(
            (
                ABSENT,
                None,
                stamp.isoformat(),
                stamp.isoformat().replace("+00:00", "Z"),
                stamp.replace(tzinfo=None).isoformat(),
                stamp.astimezone(dt.timezone(dt.timedelta(hours=2))).isoformat(),
                "2025-12-31T23:59:59.0005Z",
                "2025-06-01",
            ),
            (
                NOW_MS - 5000,
                1_700_000_000.25,
                "garbage",
                " 2025-12-31T10:00:00Z ",
                "2025-12-31T10:00:00Z ",
                True,
                "2999-01-01T00:00:00Z",
                "1969-01-01T00:00:00Z",
            ),
        ),
    )
    put(
        event,
        "sent_at",
        value((ABSENT, stamp.isoformat(), (stamp + dt.timedelta(minutes=5)).isoformat()), ("x",)),
    )
    put(
        event,
        "properties",
        value(
            (
                ABSENT,
                None,
                {},
                {"sku": "SKU-1", "price": 19.99},
                {"url": "https://p.example/a", "title": "From props", "path": "/props"},
                {"referrer": "https://ref.example/", "title": 5},
            ),
            ([1], "x", {"big": 2**70}, {"path": 5, "title": ["t"]}),
        ),
    )
    put(event, "traits", value((ABSENT, {"plan": "pro"}), ("bad",)))
    put(event, "name", value((ABSENT, "Pricing"), (5,)))
    put(event, choice(rng, "api", "web3"), value((ABSENT, None), ({"chain_id": 1}, "bad")))
    event["context"] = value((random_context(rng, value),), (None, {}, "bad"))
    return event


def random_context(rng: random.Random, value: Any) -> Any:
    context: dict[str, Any] = {}
    page: Any = {}
    put(
        page,
        "url",
        value(
            (
                ABSENT,
                None,
                "",
                "https://shop.example/p/1?utm_source=news&utm_medium=mail&utm_campaign=x",
                "https://Shop.Example:8443/a?gclid=abc&utm_term=t&utm_content=c",
                "https://shop.example/p/2",
                "http://[::1",
                "u" * 5000,
            ),
            (5, ["u"]),
        ),
    )
    put(page, "referrer", value((ABSENT, None, "", "https://www.google.com/search?q=x"), (5,)))
    put(page, "title", value((ABSENT, None, "", "Product", "t" * 2000), (5,)))
    put(page, "path", value((ABSENT, None, "", "/p/1", "/P/Other", "p" * 3000), (5,)))
    put(context, "page", value((page, page, page, ABSENT, None, {}), ("bad",)))
    put(context, "campaign", value((ABSENT, {}), ({"source": "ads", "name": "spring"}, "bad")))
    put(context, "userAgent", value((ABSENT, CHROME, BOT, ""), (5,)))
    put(context, "ip", value((ABSENT, "81.2.69.160", "2001:db8::1", "", "1" * 80), (5,)))
    put(context, "locale", value((ABSENT, "en-GB", "x" * 40), (5,)))
    screen: Any = {}
    put(screen, "width", value((ABSENT, None, 1440, 0, 65535), (1440.0, -1, "1440", True, 70000)))
    put(screen, "height", value((ABSENT, None, 900), (900.5, -5, 65536)))
    put(context, "screen", value((screen, screen, ABSENT, None, {}), ("bad",)))
    library: Any = {}
    put(library, "name", value((ABSENT, None, "sextant-js", "n" * 70), (5,)))
    put(library, "version", value((ABSENT, "0.1.0", "v" * 40), (1.5,)))
    put(context, "library", value((library, library, ABSENT, {}), ("bad",)))
    # An app's OS and device (mobile SDKs), read where there is no user agent.
    put(
        context,
        "os",
        value((*[ABSENT] * 8, {"name": "iOS", "version": "17.1.2"}, None, {}, "bad")),
    )
    put(
        context,
        "device",
        value((*[ABSENT] * 8, {"type": "android", "model": "Pixel 8"}, {"type": 5})),
    )
    return context


def without_generated_ids(
    fast: list[dict[str, Any]], reference: list[dict[str, Any]], generated: bool
) -> None:
    """The server draws a random message id (and event id) where the client sent none."""
    if not generated:
        return
    for row in (*fast, *reference):
        assert HEX32.match(row["message_id"])
        assert row["event_id"].replace("-", "") == row["message_id"]
        row["message_id"] = row["event_id"] = "generated"


def random_events(rng: random.Random, count: int, prefix: str) -> list[Any]:
    """`count` random events, each object with the message id `prefix` + its position."""
    items = []
    for i in range(count):
        item = random_event(rng)
        if isinstance(item, dict):
            item["message_id"] = f"{prefix}{i}"
        items.append(item)
    return items


@pytest.mark.parametrize("seed", range(8))
def test_every_event_is_stored_as_native_stores_it(
    normalizer: Normalizer, monkeypatch: pytest.MonkeyPatch, seed: int
) -> None:
    rng = random.Random(seed)
    fast_events = typed_events = 0
    for _ in range(400):
        item = random_event(rng)
        request = meta(
            store_raw_ip=rng.random() < 0.3,
            user_agent=choice(rng, "", CHROME),
            ip=choice(rng, "81.2.69.160", ""),
            sent_at_ms=choice(rng, None, NOW_MS - 120_000),
        )
        batch_context = choice(rng, None, None, {"userAgent": BOT, "locale": "de-DE"})
        items = [item] * FAST_PATH_MIN_EVENTS
        (block, links, rejected), (reference, ref_links, ref_rejected) = both_ways(
            normalizer, items, request, monkeypatch, batch_context
        )
        assert rejected == ref_rejected, item
        assert links == ref_links, item
        assert sorted(block.keys) == sorted(reference.keys), item
        rows, ref_rows = stored(block), stored(reference)
        client_id = isinstance(item, dict) and item.get("message_id") not in (None, "")
        without_generated_ids(rows, ref_rows, not client_id)
        assert rows == ref_rows, item
        fast_events += block.fast_count
        if big_int(item):
            continue  # JSON allows it: the typed path stores it as sent (its own test)
        (block, links, rejected), took = typed_way(normalizer, items, request, batch_context)
        assert (rejected, links) == (ref_rejected, ref_links), item
        assert sorted(block.keys) == sorted(reference.keys), item
        rows = stored(block)
        without_generated_ids(rows, [], not client_id)
        assert differences(rows, ref_rows) == [], item
        typed_events += block.fast_count if took else 0
    assert fast_events > 400 * FAST_PATH_MIN_EVENTS // 4  # the fast path took many of them
    assert typed_events > 400 * FAST_PATH_MIN_EVENTS // 8  # and the typed path many too


def test_a_mixed_batch_is_stored_as_native_stores_it(
    normalizer: Normalizer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Many different events in one request (families with many distinct inputs)."""
    rng = random.Random(42)
    items = random_events(rng, 400, "mixed-")
    request = meta(user_agent=CHROME, store_raw_ip=True)
    (block, links, rejected), (reference, ref_links, ref_rejected) = both_ways(
        normalizer, items, request, monkeypatch
    )
    assert rejected == ref_rejected
    assert links == ref_links
    assert sorted(block.keys) == sorted(reference.keys)
    assert 0 < block.fast_count < len(block)  # both paths in one block
    by_id = {row["message_id"]: row for row in stored(reference)}
    rows = stored(block)
    assert len(rows) == len(by_id)
    for row in rows:
        assert row == by_id[row["message_id"]]
    # Through the typed path, the events that fit its shape (one that does not sends the
    # whole body down the dict path): those it does not take are normalised from dicts.
    items = [item for item in items if fits_typed(item) and not big_int(item)]
    reference, ref_links, ref_rejected = normalizer.block(items, request)
    (block, links, rejected), took = typed_way(normalizer, items, request)
    assert took
    assert (rejected, links) == (ref_rejected, ref_links)
    assert 0 < block.fast_count < len(block)
    by_id = {row["message_id"]: row for row in stored(reference)}
    assert {row["message_id"]: row for row in stored(block)} == by_id


def test_the_benchmark_and_tracker_events_take_the_fast_path(normalizer: Normalizer) -> None:
    tracker_page = {
        "type": "page",
        "message_id": str(uuid.uuid4()),
        "anonymous_id": "a-1",
        "session_id": "s-1",
        "timestamp": "2025-12-31T23:00:00.123Z",
        "sent_at": "2025-12-31T23:00:00.130Z",
        "event": "$pageview",
        "properties": {},
        "context": {
            "page": {
                "url": "https://shop.example/?utm_source=x",
                "path": "/",
                "title": "Shop",
                "referrer": "",
            },
            "screen": {"width": 390, "height": 844},
            "locale": "en-GB",
            "library": {"name": "sextant-js", "version": "1"},
        },
    }
    track = {
        "type": "track",
        "event": "add_to_cart",
        "anonymous_id": "anon-1",
        "timestamp": "2025-12-31T23:00:00.123456+00:00",
        "properties": {"sku": "SKU-1", "price": 19.99, "quantity": 1},
        "context": {"page": {"url": "https://shop.example/p/1"}, "userAgent": CHROME},
    }
    block, _, rejected = normalizer.block([tracker_page, track] * 10, meta())
    assert rejected == []
    assert block.fast_count == 20
    assert len(block.keys) == 10  # the tracker's message ids; the others are generated


def test_iso_timestamps_in_ms_as_datetime_timestamp_rounds_them() -> None:
    rng = random.Random(7)
    zones = [
        dt.UTC,
        dt.timezone(dt.timedelta(hours=5, minutes=30)),
        dt.timezone(-dt.timedelta(hours=8)),
    ]
    for _ in range(5000):
        micros = rng.randrange(-(10**15), 4 * 10**15)
        if rng.random() < 0.3:
            micros = micros // 1000 * 1000 + 500  # exactly half a millisecond
        stamp = dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(microseconds=micros)
        text = stamp.astimezone(rng.choice(zones)).isoformat()
        if rng.random() < 0.2:
            text = stamp.replace(tzinfo=None).isoformat()
        parsed = dt.datetime.fromisoformat(text)
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=dt.UTC)
        assert normalize.iso_ms(text) == round(parsed.timestamp() * 1000), text


def test_properties_are_stored_as_the_same_json(normalizer: Normalizer) -> None:
    props = {"nested": {"a": [1, 2.5, None, True]}, "ü": "ß"}
    item = {"event": "e", "anonymous_id": "a", "properties": props}
    block, _, _ = normalizer.block([item] * FAST_PATH_MIN_EVENTS, meta())
    assert block.fast_count == FAST_PATH_MIN_EVENTS
    [row, *_] = stored(block)
    assert orjson.loads(row["properties"]) == props
    assert row["properties"] == orjson.dumps(props).decode()


def test_the_typed_path_stores_properties_as_sent(normalizer: Normalizer) -> None:
    """Spacing and integers beyond 64 bits (valid JSON, which orjson reads as a float) are
    kept: `properties` is the text of the body, not a re-encoding."""
    text = '{"big": 1180591620717411303424, "nested": {"a": [1, 2.5]}}'
    events = ",".join(
        f'{{"event": "e", "anonymous_id": "a", "properties": {text}}}'
        for _ in range(FAST_PATH_MIN_EVENTS)
    )
    body = f'{{"batch": [{events}]}}'.encode()
    assert decode_batch(body) is not None
    block, _, rejected, _ = prepare_native_body(normalizer, body, meta(), meta().day, 1000)
    assert rejected == []
    assert block.fast_count == FAST_PATH_MIN_EVENTS
    assert {row["properties"] for row in stored(block)} == {text}


def test_a_flush_of_many_requests_stores_what_each_would_alone(normalizer: Normalizer) -> None:
    """The writer builds one table from all of a flush's requests (pages, referrers and user
    agents shared between them converted once): the same rows as each request alone."""
    rng = random.Random(7)
    blocks = []
    for request in range(12):
        items = random_events(rng, 40, f"flush-{request}-")
        project = str(uuid.UUID(int=rng.getrandbits(128)))
        request_meta = meta(
            project_id=project,
            received_ms=NOW_MS + request,
            user_agent=choice(rng, "", CHROME),
            store_raw_ip=request % 3 == 0,
        )
        blocks.append(normalizer.block(items, request_meta)[0])
    assert sum(block.fast_count for block in blocks) > 100
    alone = {
        (row["project_id"], row["message_id"]): row for block in blocks for row in stored(block)
    }
    together = build_table(blocks)
    assert together is not None
    rows = rows_of(together)
    assert len(rows) == len(alone)
    for row in rows:
        assert row == alone[(row["project_id"], row["message_id"])]


SEGMENT_NAMES = {
    "user_id": "userId",
    "anonymous_id": "anonymousId",
    "message_id": "messageId",
    "sent_at": "sentAt",
}


# RudderStack's context.sessionId: ids, and values that are no id (ignored by both paths).
SESSION_NUMBERS = (1667394855000, 0, -3, "s-1", "", 2**64 - 1, 2**64, True, 1.5, None, "x" * 300)


def to_segment(item: Any, rng: random.Random | None = None) -> Any:
    """A native test event as a Segment message (camelCase ids; the type always said). With
    `rng`, sometimes as RudderStack's SDKs send it: the client time as originalTimestamp
    (alone or beside a timestamp) and a session number in the context."""
    if not isinstance(item, dict):
        return item
    out = {SEGMENT_NAMES.get(key, key): value for key, value in item.items()}
    if rng is not None and rng.random() < 0.4:
        if "timestamp" in out and rng.random() < 0.7:
            out["originalTimestamp"] = out.pop("timestamp")
        elif rng.random() < 0.5:
            out["originalTimestamp"] = choice(rng, "2026-11-30T11:00:00Z", "soon", 5)
        context = out.get("context")
        if isinstance(context, dict) and rng.random() < 0.7:
            out["context"] = {**context, "sessionId": choice(rng, *SESSION_NUMBERS)}
    return out


@pytest.mark.parametrize("seed", range(4))
def test_segment_batches_are_stored_as_the_dict_path_stores_them(
    normalizer: Normalizer, seed: int
) -> None:
    """`/v1/batch` bodies through the typed path against `prepare_events` on their dicts."""
    rng = random.Random(seed)
    typed_events = 0
    for round_ in range(60):
        items = [to_segment(item, rng) for item in random_events(rng, 30, f"seg-{round_}-")]
        items = [item for item in items if not big_int(item)]
        if rng.random() < 0.6:  # mostly the shapes the typed path takes
            items = [item for item in items if fits_segment(item)]
        payload: dict[str, Any] = {"batch": items, "writeKey": "wk"}
        if rng.random() < 0.3:
            payload["sentAt"] = dt.datetime.fromtimestamp(NOW_MS / 1000, dt.UTC).isoformat()
        body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
        request = meta(store_raw_ip=rng.random() < 0.3)
        reference, ref_links, ref_rejected = prepare_events(
            normalizer,
            orjson.loads(body)["batch"],
            request,
            day=request.day,
            max_batch=1000,
            dialect="segment",
            sent_at=payload.get("sentAt"),
        )
        batch = typed.decode_segment_batch(body, SEGMENT_MAX_EVENT_BYTES)
        if batch is None:
            continue
        assert batch.writeKey == "wk"
        block, links, rejected = prepare_segment_batch(
            normalizer, batch, body, request, request.day, 1000
        )
        assert (rejected, links) == (ref_rejected, ref_links), items
        assert sorted(block.keys) == sorted(reference.keys)
        by_id = {row["message_id"]: row for row in stored(reference)}
        assert {row["message_id"]: row for row in stored(block)} == by_id
        typed_events += block.fast_count
    assert typed_events > 150  # the typed path took many of them


def fits_segment(item: Any) -> bool:
    try:
        msgspec.json.decode(json.dumps(item), type=typed.SegmentEvent)
    except msgspec.ValidationError:
        return False
    return True


def test_segment_messages_near_the_size_limit_take_the_dict_path(normalizer: Normalizer) -> None:
    small = {"type": "track", "event": "e", "userId": "u", "properties": {"x": "y" * 100}}
    large = {**small, "properties": {"x": "y" * 33_000}}
    body = json.dumps({"batch": [small] * 20}).encode()
    assert typed.decode_segment_batch(body, SEGMENT_MAX_EVENT_BYTES) is not None
    body = json.dumps({"batch": [small] * 400}).encode()  # over 32 KB, every message small
    assert typed.decode_segment_batch(body, SEGMENT_MAX_EVENT_BYTES) is not None
    body = json.dumps({"batch": [small] * 10 + [large]}).encode()
    assert typed.decode_segment_batch(body, SEGMENT_MAX_EVENT_BYTES) is None
    # ... where the message over the limit is reported by index, the others stored.
    block, _, rejected = prepare_events(
        normalizer,
        orjson.loads(body)["batch"],
        meta(),
        day=meta().day,
        max_batch=1000,
        dialect="segment",
    )
    assert [entry["index"] for entry in rejected] == [10]
    assert len(block) == 10
