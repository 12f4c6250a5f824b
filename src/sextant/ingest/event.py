"""The canonical event: one row of the `events` table, whatever wire format it came in.

A canonical event is a plain dict keyed by `events` column names holding only the columns
the event uses (ClickHouse fills the rest with their defaults). Timestamps are epoch
milliseconds. The normaliser's fast path skips the dict and writes straight into the
columns of an `EventBlock` (block.py); both end up in the same Arrow table.
"""

from __future__ import annotations

from typing import Any

# Column order of the `events` table (migrations/events/0001_events.sql): the demo generator
# and bulk loaders emit rows in this order.
EVENT_COLUMNS: tuple[str, ...] = (
    "project_id",
    "event_id",
    "message_id",
    "type",
    "event",
    "timestamp",
    "received_at",
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
    "is_bot",
    "locale",
    "screen_width",
    "screen_height",
    "country",
    "region",
    "city",
    "ip_hash",
    "ip",
    "library",
    "library_version",
    "http_method",
    "http_route",
    "http_status",
    "duration_ms",
    "request_bytes",
    "response_bytes",
    "chain_id",
    "wallet_address",
    "contract_address",
    "tx_hash",
    "tx_value",
    "token_symbol",
    "tx_status",
    "properties",
)

ALIAS_COLUMNS: tuple[str, ...] = ("project_id", "distinct_id", "person_id", "updated_at")

EVENT_TYPES = frozenset({"track", "page", "screen", "identify", "alias", "group", "api", "web3"})

# Event names of the types that have no name of their own.
TYPE_EVENT_NAMES = {
    "page": "$pageview",
    "screen": "$screen",
    "identify": "$identify",
    "alias": "$alias",
    "group": "$group",
    "api": "$api_request",
}

Row = dict[str, Any]


def format_ms(ms: int) -> str:
    """Epoch milliseconds as ClickHouse reads a DateTime64(3): `seconds.millis`."""
    if ms >= 1000:  # every real timestamp: cutting the digits is faster than dividing
        digits = str(ms)
        return f"{digits[:-3]}.{digits[-3:]}"
    return f"{ms // 1000}.{ms % 1000:03d}"
