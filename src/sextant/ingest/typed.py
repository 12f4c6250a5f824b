"""A native batch body decoded straight into typed structs (msgspec), for the fast path.

`orjson.loads` builds a dict for every event, its context, page, screen and library, and
a dict tree for its properties, which the fast path then reads key by key, checks value
by value, and encodes back to JSON for the `properties` column. Here msgspec decodes the
body against the shape the fast path accepts: field types and lengths are checked in C
while parsing, unknown fields are skipped without building them, and `properties` stays
the raw JSON text it arrived as (a slice of the body), so it is neither built nor encoded.

A body that does not fit the shape (a wrong type anywhere, an id too long, a batch
context, a list instead of `{"batch": [...]}`) returns None and takes the dict path with
its error messages; an event that fits the shape but is not one the fast path takes (an
identify, a timestamp in the future) is normalised from its dict, as before.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar

import msgspec
from msgspec import Meta, Raw, Struct

from sextant.ingest.normalize import MAX_ID, MAX_MESSAGE_ID

_Id = Annotated[str, Meta(max_length=MAX_ID)]
_MessageId = Annotated[str, Meta(max_length=MAX_MESSAGE_ID)]
_UInt16 = Annotated[int, Meta(ge=0, le=65535)]
_Stamp = str | int | float
_Int64 = Annotated[int, Meta(ge=-(2**63), le=2**63 - 1)]  # (the dict path takes the rest)
_EMPTY = Raw()


class Page(Struct, gc=False):
    url: str | None = None
    referrer: str | None = None
    title: str | None = None
    path: str | None = None


class Screen(Struct, gc=False):
    width: _UInt16 | None = None
    height: _UInt16 | None = None


class Library(Struct, gc=False):
    name: str | None = None
    version: str | None = None


class Context(Struct, gc=False):
    page: Page | None = None
    userAgent: str | None = None  # noqa: N815 (the wire name)
    ip: str | None = None
    locale: str | None = None
    screen: Screen | None = None
    library: Library | None = None
    campaign: Raw = _EMPTY
    # An app's OS and device: only read where there is no user agent (by the dict path).
    os: Raw = _EMPTY
    device: Raw = _EMPTY
    # Only a Segment message's context has one (`SegmentContext`).
    sessionId: ClassVar[None] = None  # noqa: N815


class SegmentContext(Context, gc=False):
    # RudderStack's web and mobile SDKs number their sessions here (`from_segment`).
    sessionId: _Int64 | _Id | None = None  # type: ignore[assignment,misc]  # noqa: N815


class Event(Struct, gc=False):
    type: str = "track"
    event: str | None = None
    user_id: _Id | None = None
    anonymous_id: _Id | None = None
    message_id: _MessageId | None = None
    session_id: _Id | None = None
    timestamp: _Stamp | None = None
    sent_at: _Stamp | None = None
    name: str | None = None
    properties: Raw = _EMPTY
    context: Context | None = None
    traits: Raw = _EMPTY
    api: Raw = _EMPTY
    web3: Raw = _EMPTY
    original_timestamp: ClassVar[None] = None  # only a Segment message has one


class Batch(Struct, gc=False):
    batch: list[Event]
    sent_at: _Stamp | None = None
    context: Raw = _EMPTY


class SegmentEvent(Struct, gc=False):
    """A Segment message with the attributes of `Event` (`from_segment`'s renaming)."""

    type: str = ""  # a message must say its type (`native` reports it)
    event: str | None = None
    user_id: _Id | None = msgspec.field(default=None, name="userId")
    anonymous_id: _Id | None = msgspec.field(default=None, name="anonymousId")
    message_id: _MessageId | None = msgspec.field(default=None, name="messageId")
    session_id: _Id | None = None
    timestamp: _Stamp | None = None
    # The client's clock where `timestamp` is not set (RudderStack's SDKs send only this).
    original_timestamp: _Stamp | None = msgspec.field(default=None, name="originalTimestamp")
    sent_at: _Stamp | None = msgspec.field(default=None, name="sentAt")
    name: str | None = None
    properties: Raw = _EMPTY
    context: SegmentContext | None = None
    traits: Raw = _EMPTY
    # `from_segment` keeps a key it does not rename: a message that also has one of these is
    # read differently from its dict (two values for one field), so the dict path takes it.
    snake_user_id: Raw = msgspec.field(default=_EMPTY, name="user_id")
    snake_anonymous_id: Raw = msgspec.field(default=_EMPTY, name="anonymous_id")
    snake_message_id: Raw = msgspec.field(default=_EMPTY, name="message_id")
    snake_sent_at: Raw = msgspec.field(default=_EMPTY, name="sent_at")
    # `from_segment` drops these: Segment libraries put web3 and API fields in properties.
    api: ClassVar[Raw] = _EMPTY
    web3: ClassVar[Raw] = _EMPTY


class SegmentBatch(Struct, gc=False):
    batch: list[SegmentEvent]
    sentAt: _Stamp | None = None  # noqa: N815 (the wire name)
    context: Raw = _EMPTY
    writeKey: str | None = None  # noqa: N815


class _Sizes(Struct, gc=False):
    batch: list[Raw]


class _WriteKey(Struct, gc=False):
    writeKey: Any = None  # noqa: N815 (the wire name)


_decoder = msgspec.json.Decoder(Batch)
_segment_decoder = msgspec.json.Decoder(SegmentBatch)
_sizes_decoder = msgspec.json.Decoder(_Sizes)
_key_decoder = msgspec.json.Decoder(_WriteKey)


def body_write_key(body: bytes) -> Any:
    """The `writeKey` member of a JSON object body (None when it has none), read without
    building the rest; ValueError when the body is not a well-formed JSON object."""
    try:
        return _key_decoder.decode(body).writeKey
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise ValueError(str(exc)) from None


def _decode(decoder: msgspec.json.Decoder[Any], body: bytes) -> Any:
    if b'"batch"' not in body[:256]:
        return None  # a single event (or a list): decoding it as a batch would only fail
    try:
        # Raw values are not checked for UTF-8 as strings are; the dict path says where.
        body.decode()
        decoded = decoder.decode(body)
    except (UnicodeDecodeError, msgspec.ValidationError, msgspec.DecodeError, RecursionError):
        return None  # (nested too deeply for msgspec: the dict path rejects that event)
    context = decoded.context
    if context and bytes(context) != b"null":
        return None  # a batch context is merged into each event's dict context
    return decoded


def decode_batch(body: bytes) -> Batch | None:
    """A native body as a `Batch`, or None when it is not one the typed path takes."""
    decoded: Batch | None = _decode(_decoder, body)
    return decoded


def decode_segment_batch(body: bytes, max_message_bytes: int) -> SegmentBatch | None:
    """A Segment `/v1/batch` body as a `SegmentBatch`, or None when it is not one the typed
    path takes, or when a message may be over Segment's per-message limit (the dict path
    measures each message as its compact JSON and reports it by index)."""
    decoded: SegmentBatch | None = _decode(_segment_decoder, body)
    if decoded is None:
        return None
    for event in decoded.batch:
        if (
            event.snake_user_id
            or event.snake_anonymous_id
            or event.snake_message_id
            or event.snake_sent_at
        ):
            return None
    if len(body) <= max_message_bytes:
        return decoded
    # Compact JSON is shorter than the text sent except for numbers written short ("9e15"
    # is "9000000000000000.0"): a message of a fifth of the limit is within it.
    sizes = _sizes_decoder.decode(body)
    if any(len(message) > max_message_bytes // 5 for message in sizes.batch):
        return None
    return decoded
