"""Wire formats accepted by the ingestion endpoints, and what they answer.

The **native** format (`POST /api/v1/events`, `POST /api/v1/collect`) is one JSON object per
event, or `{"batch": [event, ...], "sent_at": ..., "context": {...}}`:

```json
{
  "type": "track",              // track|page|screen|identify|alias|group|api|web3 (default track)
  "event": "signup",            // required for track and web3; page -> "$pageview",
                                // screen -> "$screen", identify -> "$identify",
                                // alias -> "$alias", group -> "$group", api -> "$api_request"
  "message_id": "7f0c…",        // idempotency key: a retry with the same id counts once
  "timestamp": "2026-11-23T10:00:00.123Z",  // ISO 8601 or epoch s/ms; default: now
  "sent_at": "2026-11-23T10:00:05Z",        // optional: when the client sent it (skew fix)
  "user_id": "u_42",            // user_id and/or anonymous_id (one required, except for api)
  "anonymous_id": "a_9c1…",
  "previous_id": "a_9c1…",      // alias only: the id being merged into user_id
  "group_id": "acme",           // group only
  "session_id": "s_…",
  "name": "Pricing",            // page/screen name (the title when there is no page title)
  "properties": {"plan": "pro"},  // free-form; stored as JSON
  "traits": {"email": "…"},     // identify/group; stored in properties under "$traits"
  "context": {
    "page": {"url": "https://shop.example/p?utm_source=x",
             "referrer": "https://google.com/", "title": "…"},
    "userAgent": "Mozilla/5.0 …",  // default: the request's User-Agent header
    "ip": "203.0.113.9",           // default: the request's client address
    "locale": "de-DE",
    "screen": {"width": 1440, "height": 900},
    "campaign": {"source": "…", "medium": "…", "name": "…", "term": "…", "content": "…"},
    "library": {"name": "sextant-js", "version": "0.1.0"}
  },
  "api": {"method": "GET", "route": "/items/{id}", "status": 200, "duration_ms": 12.5,
          "request_bytes": 120, "response_bytes": 5120},
  "web3": {"chain_id": 1, "wallet": "0xabc…(40 hex)", "contract": "0x…(40 hex)",
           "tx_hash": "0x…(64 hex)", "value": "1000000000000000000", "token": "ETH",
           "status": "confirmed"}
}
```

The **Segment** format (`/v1/track|identify|page|screen|group|alias|batch`) follows Segment's HTTP
Tracking API (camelCase: `userId`, `anonymousId`, `messageId`, `sentAt`, `previousId`,
`groupId`, `writeKey`, batch-level `context` merged into each item).

Decoding does not go through these models (hand-written checks in `normalize.py` are several
times faster per event); they exist to document the API in OpenAPI and in the SDKs.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

EventType = Literal["track", "page", "screen", "identify", "alias", "group", "api", "web3"]


class PageContext(BaseModel):
    url: str | None = None
    referrer: str | None = None
    title: str | None = None
    path: str | None = None


class ScreenContext(BaseModel):
    width: int | None = None
    height: int | None = None


class CampaignContext(BaseModel):
    source: str | None = None
    medium: str | None = None
    name: str | None = None
    term: str | None = None
    content: str | None = None


class LibraryContext(BaseModel):
    name: str | None = None
    version: str | None = None


class EventContext(BaseModel):
    page: PageContext | None = None
    userAgent: str | None = None  # noqa: N815 - the wire name
    ip: str | None = None
    locale: str | None = None
    screen: ScreenContext | None = None
    campaign: CampaignContext | None = None
    library: LibraryContext | None = None


class ApiFields(BaseModel):
    method: str = Field(description="HTTP method, e.g. GET")
    route: str = Field(description="Route template, e.g. /items/{id}")
    status: int = Field(ge=100, le=599)
    duration_ms: float = Field(ge=0)
    request_bytes: int | None = Field(default=None, ge=0)
    response_bytes: int | None = Field(default=None, ge=0)


class Web3Fields(BaseModel):
    chain_id: int | None = Field(default=None, ge=1, description="EIP-155 chain id")
    wallet: str | None = Field(default=None, description="20-byte hex address (0x + 40 hex)")
    contract: str | None = Field(default=None, description="20-byte hex address")
    tx_hash: str | None = Field(default=None, description="32-byte hex hash (0x + 64 hex)")
    value: str | None = Field(default=None, description="Amount in the smallest unit (wei)")
    token: str | None = Field(default=None, description="Token symbol, e.g. ETH")
    status: str | None = Field(default=None, description="e.g. pending, confirmed, failed")


class NativeEvent(BaseModel):
    """One event in Sextant's native format."""

    type: EventType = "track"
    event: str | None = None
    message_id: str | None = None
    timestamp: str | float | None = None
    sent_at: str | float | None = None
    user_id: str | None = None
    anonymous_id: str | None = None
    previous_id: str | None = None
    group_id: str | None = None
    session_id: str | None = None
    name: str | None = None
    properties: dict[str, Any] | None = None
    traits: dict[str, Any] | None = None
    context: EventContext | None = None
    api: ApiFields | None = None
    web3: Web3Fields | None = None


class NativeBatch(BaseModel):
    """Up to 1,000 events (1 MB) in one request."""

    batch: list[NativeEvent]
    sent_at: str | float | None = None
    context: EventContext | None = None


class RejectedEvent(BaseModel):
    index: int
    errors: list[str]


class IngestAccepted(BaseModel):
    """What an ingestion endpoint answers: how many events were stored, and which were not."""

    accepted: int
    rejected: list[RejectedEvent] = Field(default_factory=list)


class SegmentAccepted(IngestAccepted):
    success: bool = True
