"""From a request's decoded body to its accepted block: the CPU-bound half of ingestion.

Everything here is synchronous and needs no store, no key and no HTTP request, so it runs
the same in the server process and in the normalising workers (`pool.py`): decode the JSON,
split a native body into its events, apply the request-level checks (batch size, `sent_at`,
the batch context), and hand the events to the `Normalizer`.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import replace
from typing import Any, Literal

import numpy as np
import orjson

from sextant.core.errors import BadRequest
from sextant.ingest.block import EventBlock
from sextant.ingest.normalize import (
    FAST_PATH_MIN_EVENTS,
    MAX_DEPTH,
    InvalidEvent,
    Normalizer,
    RequestMeta,
    compact_json,
    from_segment,
    parse_timestamp,
)
from sextant.ingest.typed import SegmentBatch, decode_batch, decode_segment_batch

SEGMENT_MAX_EVENT_BYTES = 32 * 1024
SEGMENT_MAX_BATCH_BYTES = 500 * 1024

Dialect = Literal["native", "segment"]

Prepared = tuple[EventBlock, list[tuple[str, str]], list[dict[str, Any]]]
# ... and whether the body was a single event (not a batch): its rejection is a 400.
PreparedBody = tuple[EventBlock, list[tuple[str, str]], list[dict[str, Any]], bool]


# A number of 20 digits or more (after ":", "[" or ","): beyond 64 bits, where orjson
# would read it as a float and lose digits.
_LONG_INTEGER = re.compile(rb"[:\[,]\s*-?[0-9]{20}")


def _finite(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise ValueError("number is infinity when parsed as double")
    return value


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


class NestedTooDeep(BadRequest):
    """A body nested deeper than the JSON parser goes (orjson: 1,024 levels)."""

    code = "nesting_too_deep"


_TOO_DEEP = f"nested too deeply to parse (events' properties may nest at most {MAX_DEPTH} levels)"


def decode_json(body: bytes) -> Any:
    """Parse a request body; 400 saying where the JSON breaks. Integers beyond 64 bits keep
    every digit (a body with one is read by the standard library's parser)."""
    if not body.strip():
        raise BadRequest("the request body is empty; send a JSON object", code="invalid_json")
    try:
        if _LONG_INTEGER.search(body) is None:
            return orjson.loads(body)
        return json.loads(body, parse_float=_finite, parse_constant=_no_constant)
    except (orjson.JSONDecodeError, json.JSONDecodeError) as exc:
        if "depth" in exc.msg or "recursion" in exc.msg.lower():
            raise NestedTooDeep(
                f"JSON {_TOO_DEEP} at line {exc.lineno}, column {exc.colno}"
            ) from None
        raise BadRequest(
            f"malformed JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}",
            code="invalid_json",
            details=[{"line": exc.lineno, "column": exc.colno, "position": exc.pos}],
        ) from None
    except RecursionError:  # the standard library's parser
        raise NestedTooDeep(f"JSON {_TOO_DEEP}") from None
    except ValueError as exc:  # (UnicodeDecodeError too) from json.loads
        raise BadRequest(f"malformed JSON: {exc}", code="invalid_json") from None


_OPENING = np.frombuffer(b"{[", np.uint8)
_CLOSING = np.frombuffer(b"}]", np.uint8)
_BATCH_KEY = re.compile(rb'"batch"\s*:\s*\[')
_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')


def split_batch(body: bytes) -> tuple[bytes, list[bytes]] | None:
    """Cut a body `{"batch": [...], ...}` into the body with an empty batch and the JSON
    text of each of its events, without parsing (nothing recurses): for a body nested too
    deeply for the parser, so that only its events nested too deeply are refused. None when
    the body is not such an object."""
    # Strings blanked to their length: positions stay the body's, no bracket in a string.
    blank = _JSON_STRING.sub(lambda m: b'"' + b"_" * (len(m.group()) - 2) + b'"', body)
    if not blank.lstrip().startswith(b"{"):
        return None
    chars = np.frombuffer(blank, np.uint8)
    steps = np.isin(chars, _OPENING).astype(np.int32) - np.isin(chars, _CLOSING)
    level = np.cumsum(steps)  # the depth after each character
    for key in _BATCH_KEY.finditer(body):
        at = key.start()
        if blank[at + 1 : at + 6] != b"_____" or level[at] != 1:
            continue  # inside a string, or a key of something nested
        start = key.end() - 1
        inside = level[start:] <= 1
        if not inside.any():
            return None  # the array never closes: let the parser say where
        end = start + int(np.argmax(inside))
        commas = (chars[start:end] == ord(",")) & (level[start:end] == 2)
        cuts = [start, *(start + np.flatnonzero(commas)).tolist()]
        events = [body[a + 1 : b] for a, b in zip(cuts, [*cuts[1:], end], strict=True)]
        if len(events) == 1 and not events[0].strip():
            events = []
        return body[: start + 1] + body[end:], events
    return None


def decode_events(body: bytes) -> tuple[Any, list[dict[str, Any]]]:
    """`decode_json` for a native or Segment body, except that a batch nested too deeply
    for the parser is decoded event by event: (payload, the events refused by index). The
    batch then holds None where an event was refused."""
    try:
        return decode_json(body), []
    except NestedTooDeep:
        split = split_batch(body)
        if split is None:
            raise
    rest, texts = split
    payload = decode_json(rest)  # (another member nested too deeply: the whole body is)
    events: list[Any] = []
    refused: list[dict[str, Any]] = []
    for index, text in enumerate(texts):
        try:
            events.append(decode_json(text))
        except BadRequest as exc:
            refused.append({"index": index, "errors": [f"event: {exc.message}"]})
            events.append(None)
    payload["batch"] = events
    return payload, refused


def decode_object(body: bytes) -> dict[str, Any]:
    """`decode_json` for a body that must be a JSON object (Segment's calls)."""
    payload = decode_json(body)
    if not isinstance(payload, dict):
        raise BadRequest("the body must be a JSON object", code="validation_error")
    return payload


def split_native(payload: Any) -> tuple[list[Any], Any, Any, bool]:
    """(events, sent_at, batch context, single) of a native body."""
    if isinstance(payload, dict) and "batch" in payload:
        batch = payload["batch"]
        if not isinstance(batch, list):
            raise BadRequest("batch: must be an array of events", code="validation_error")
        return batch, payload.get("sent_at"), payload.get("context"), False
    if isinstance(payload, list):
        return payload, None, None, False
    return [payload], None, None, True


def with_sent_at(meta: RequestMeta, sent_at: Any) -> RequestMeta:
    """`meta` with a body's `sent_at` (when it has one); 400 when it is not a time."""
    if sent_at is None:
        return meta
    try:
        return replace(meta, sent_at_ms=parse_timestamp(sent_at, "sent_at"))
    except InvalidEvent as exc:
        raise BadRequest(exc.errors[0], code="validation_error") from None


def prepare_events(
    normalizer: Normalizer,
    items: list[Any],
    meta: RequestMeta,
    *,
    day: str,
    max_batch: int,
    dialect: Dialect = "native",
    segment_type: str | None = None,
    sent_at: Any = None,
    batch_context: Any = None,
    refused: list[dict[str, Any]] | tuple[()] = (),
) -> Prepared:
    """Validate every item: (the accepted block, person links, rejections by index).
    `refused`: items refused already (`decode_events`), by index."""
    if len(items) > max_batch:
        raise BadRequest(
            f"batch: at most {max_batch} events per request (got {len(items)})",
            code="batch_too_large",
        )
    meta = with_sent_at(meta, sent_at)
    if batch_context is not None and not isinstance(batch_context, dict):
        raise BadRequest("context: must be an object", code="validation_error")
    if dialect != "segment" and not refused:
        return normalizer.block(items, meta, batch_context=batch_context, day=day)
    # What is refused already (by index) is left out; the rest keeps its index.
    early = list(refused)
    positions: list[int] = list(range(len(items)))
    if early:
        skip = {entry["index"] for entry in early}
        positions = [index for index in positions if index not in skip]
        items = [items[index] for index in positions]
    if dialect == "segment":
        # Segment's own per-message limit first, then its camelCase names to ours.
        kept: list[int] = []
        messages: list[Any] = []
        for index, item in zip(positions, items, strict=True):
            error = _segment_size_error(item)
            if error:
                early.append({"index": index, "errors": [error]})
                continue
            kept.append(index)
            messages.append(from_segment(item, segment_type))
        positions, items = kept, messages
    block, aliases, rejected = normalizer.block(items, meta, batch_context=batch_context, day=day)
    for entry in rejected:
        entry["index"] = positions[entry["index"]]
    rejected = sorted(early + rejected, key=lambda entry: int(entry["index"]))
    return block, aliases, rejected


def _segment_size_error(item: Any) -> str | None:
    if not isinstance(item, dict):
        return None
    try:
        size = len(compact_json(item))
    except (TypeError, ValueError) as exc:
        return f"event: cannot be read as JSON ({exc})"
    return "event: larger than 32 KB (Segment's limit)" if size > SEGMENT_MAX_EVENT_BYTES else None


def prepare_native_body(
    normalizer: Normalizer, body: bytes, meta: RequestMeta, day: str, max_batch: int
) -> PreparedBody:
    """A native body's accepted block, links, rejections and whether it was one event."""
    batch = decode_batch(body)
    if batch is not None and FAST_PATH_MIN_EVENTS <= len(batch.batch) <= max_batch:
        meta = with_sent_at(meta, batch.sent_at)
        dicts = lambda: split_native(decode_json(body))[0]  # noqa: E731
        return (*normalizer.typed_block(batch.batch, dicts, meta, day=day), False)
    payload, refused = decode_events(body)
    items, sent_at, context, single = split_native(payload)
    block, aliases, rejected = prepare_events(
        normalizer,
        items,
        meta,
        day=day,
        max_batch=max_batch,
        sent_at=sent_at,
        batch_context=context,
        refused=refused,
    )
    return block, aliases, rejected, single


def prepare_segment_batch(
    normalizer: Normalizer,
    batch: SegmentBatch,
    body: bytes,
    meta: RequestMeta,
    day: str,
    max_batch: int,
) -> Prepared:
    """A Segment `/v1/batch` body decoded by `typed.decode_segment_batch`: its accepted block,
    links and rejections, as `prepare_events` gives them for the body's dicts."""
    if not FAST_PATH_MIN_EVENTS <= len(batch.batch) <= max_batch:
        return prepare_events(
            normalizer,
            decode_json(body)["batch"],
            meta,
            day=day,
            max_batch=max_batch,
            dialect="segment",
            sent_at=batch.sentAt,
        )
    meta = with_sent_at(meta, batch.sentAt)
    dicts = lambda: [from_segment(item, None) for item in decode_json(body)["batch"]]  # noqa: E731
    return normalizer.typed_block(batch.batch, dicts, meta, day=day)


def prepare_segment_body(
    normalizer: Normalizer, body: bytes, meta: RequestMeta, day: str, max_batch: int
) -> PreparedBody:
    """A Segment `/v1/batch` body (not yet decoded): its accepted block, links and
    rejections, through the typed path when the body fits it, through dicts otherwise."""
    typed = decode_segment_batch(body, SEGMENT_MAX_EVENT_BYTES)
    if typed is not None:
        return (*prepare_segment_batch(normalizer, typed, body, meta, day, max_batch), False)
    payload, refused = decode_events(body)
    if not isinstance(payload, dict):
        raise BadRequest("the body must be a JSON object", code="validation_error")
    items = payload.get("batch")
    if not isinstance(items, list):
        raise BadRequest("batch: must be an array of messages", code="validation_error")
    block, aliases, rejected = prepare_events(
        normalizer,
        items,
        meta,
        day=day,
        max_batch=max_batch,
        dialect="segment",
        sent_at=payload.get("sentAt"),
        batch_context=payload.get("context"),
        refused=refused,
    )
    return block, aliases, rejected, False


# What the normalising workers run for a body of each dialect (`pool.py`).
BODY_PREPARERS = {"native": prepare_native_body, "segment": prepare_segment_body}
