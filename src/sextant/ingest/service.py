"""Ingestion rules: authenticate, limit, decode, normalise, enrich, and group-commit.

The routers only read the HTTP request. A native or Segment batch body goes undecoded to
`IngestService.ingest_body` (a normalising worker may decode it), every other call to
`IngestService.ingest` as decoded JSON values; both apply the same `prepare.py` rules, so
limits, enrichment and storage behave the same way for the native API, the Segment API and
the browser beacon.
"""

from __future__ import annotations

import base64
import binascii
import math
import time
import zlib
from dataclasses import dataclass, field
from typing import Any

import orjson
from limits import parse as parse_limit
from starlette.requests import ClientDisconnect, Request

from sextant.config import Settings
from sextant.core.errors import BadRequest, PayloadTooLarge, TooManyRequests, Unauthorized
from sextant.core.ratelimit import RateLimiter
from sextant.ingest.block import EventBlock
from sextant.ingest.enrich import TrustedProxies, visitor_user_agent
from sextant.ingest.normalize import Normalizer, RequestMeta
from sextant.ingest.pool import NormalizerPool
from sextant.ingest.prepare import (
    BODY_PREPARERS,
    SEGMENT_MAX_BATCH_BYTES,
    SEGMENT_MAX_EVENT_BYTES,
    Dialect,
    PreparedBody,
    decode_events,
    decode_json,
    prepare_events,
)
from sextant.ingest.writer import Writer
from sextant.projects.context import ProjectContext
from sextant.projects.dependencies import KeyResolver
from sextant.projects.models import KeyKind

__all__ = [
    "SEGMENT_MAX_BATCH_BYTES",
    "SEGMENT_MAX_EVENT_BYTES",
    "IngestOutcome",
    "IngestService",
    "decode_events",
    "decode_json",
    "header_write_key",
    "read_body",
]


@dataclass(slots=True)
class IngestOutcome:
    accepted: int
    rejected: list[dict[str, Any]] = field(default_factory=list)

    def body(self, **extra: Any) -> bytes:
        return orjson.dumps({**extra, "accepted": self.accepted, "rejected": self.rejected})


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refusing more than `limit` bytes (before and after gunzip)."""
    headers = request.headers
    length = headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > limit:
        raise PayloadTooLarge(f"request body larger than {limit} bytes")
    if length is not None and length.isdigit():
        # Straight from ASGI `receive`: Request.body()'s async generator costs more than
        # the rest of reading a small event.
        receive = request.receive
        message = await receive()
        if message["type"] != "http.request":
            raise ClientDisconnect()
        body: bytes = message.get("body", b"")
        if message.get("more_body", False):
            chunks = [body]
            size = len(body)
            while True:
                message = await receive()
                if message["type"] != "http.request":
                    raise ClientDisconnect()
                chunk: bytes = message.get("body", b"")
                size += len(chunk)
                if size > limit:
                    raise PayloadTooLarge(f"request body larger than {limit} bytes")
                chunks.append(chunk)
                if not message.get("more_body", False):
                    break
            body = b"".join(chunks)
        if len(body) > limit:
            raise PayloadTooLarge(f"request body larger than {limit} bytes")
    else:
        chunks = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise PayloadTooLarge(f"request body larger than {limit} bytes")
            chunks.append(chunk)
        body = b"".join(chunks)
    encoding = headers.get("content-encoding")
    if encoding and encoding.lower() in ("gzip", "deflate"):
        decompressor = zlib.decompressobj(wbits=47)  # gzip or zlib header
        try:
            body = decompressor.decompress(body, limit + 1)
        except zlib.error:
            raise BadRequest(
                f"the body is not valid {encoding} data", code="invalid_encoding"
            ) from None
        if len(body) > limit or decompressor.unconsumed_tail:
            raise PayloadTooLarge(f"request body larger than {limit} bytes once decompressed")
    return body


def header_write_key(request: Request) -> str | None:
    """`X-API-Key`, `Authorization: Bearer`, or Segment's Basic (key as the username)."""
    headers = request.headers
    key = headers.get("x-api-key")
    if key:
        return key.strip()
    authorization = headers.get("authorization")
    if not authorization:
        return None
    scheme, _, value = authorization.partition(" ")
    scheme = scheme.lower()
    if scheme == "bearer":
        return value.strip()
    if scheme == "basic":
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode()
        except (binascii.Error, ValueError):  # (UnicodeDecodeError, and a non-ASCII header)
            raise Unauthorized("malformed Basic credentials", code="invalid_api_key") from None
        return decoded.partition(":")[0].strip()
    return None


class LocalRateLimit:
    """Fixed-window counters per write key, in process.

    The same rule as `limits`' fixed window on its memory storage, without its per-call
    locks, wrappers and expiry timer, which cost more than validating an event. Used when no
    Redis is configured; with Redis the shared `RateLimiter` counts across workers.
    """

    def __init__(self, limit: str) -> None:
        item = parse_limit(limit)
        self.amount = item.amount
        self.seconds = float(item.get_expiry())
        self._windows: dict[str, list[float]] = {}

    def hit(self, key: str, message: str) -> None:
        now = time.monotonic()
        window = self._windows.get(key)
        if window is None or now >= window[0]:
            if len(self._windows) > 100_000:
                self._windows = {k: w for k, w in self._windows.items() if w[0] > now}
            window = self._windows[key] = [now + self.seconds, 0.0]
        window[1] += 1
        if window[1] > self.amount:
            raise TooManyRequests(message, retry_after=math.ceil(window[0] - now))


class IngestService:
    """One per process: holds the normaliser (with its caches) and the writer."""

    def __init__(
        self,
        *,
        settings: Settings,
        resolver: KeyResolver,
        limiter: RateLimiter,
        normalizer: Normalizer,
        writer: Writer,
        proxies: TrustedProxies,
        pool: NormalizerPool | None = None,
    ) -> None:
        self.settings = settings
        self.resolver = resolver
        self.limiter = limiter
        self.normalizer = normalizer
        self.writer = writer
        self.proxies = proxies
        self.pool = pool
        self.rate_limit = settings.ingest_rate_limit
        self.local_limit = None if limiter.shared else LocalRateLimit(self.rate_limit)
        self._day_number = -1
        self._day_text = ""
        self.max_batch = settings.ingest_max_batch_events
        self.max_body = settings.ingest_max_body_bytes

    def authenticate(self, secret: str | None) -> ProjectContext:
        """The project of a write key, after counting the request against its rate limit."""
        if not secret:
            raise Unauthorized(
                "missing write key: send it in X-API-Key, Authorization: Bearer, "
                "Basic auth (as the username) or as writeKey in the body",
                code="missing_api_key",
            )
        ctx = self.resolver.resolve(secret, KeyKind.WRITE)
        key = ctx.key_id or ctx.project_id
        message = f"rate limit of {self.rate_limit} for this write key exceeded"
        if self.local_limit is not None:
            self.local_limit.hit(key, message)
        else:
            self.limiter.hit(self.rate_limit, "ingest", key, message=message)
        return ctx

    def client_ip(self, request: Request) -> str:
        peer = request.client.host if request.client else ""
        if not self.proxies.networks:
            return peer
        return self.proxies.client_ip(peer, request.headers.get("x-forwarded-for"))

    def _day(self, received_ms: int) -> str:
        """The UTC date (for the IP salt), recomputed only when the day changes."""
        number = received_ms // 86_400_000
        if number != self._day_number:
            self._day_text = time.strftime("%Y-%m-%d", time.gmtime(number * 86_400))
            self._day_number = number
        return self._day_text

    def _meta(
        self, ctx: ProjectContext, request: Request, received_ms: int, header_agent: bool
    ) -> RequestMeta:
        return RequestMeta(
            project_id=ctx.project_id,
            store_raw_ip=ctx.store_raw_ip,
            received_ms=received_ms,
            ip=self.client_ip(request),
            user_agent=visitor_user_agent(request.headers.get("user-agent") or "")
            if header_agent
            else "",
        )

    async def ingest_body(
        self, ctx: ProjectContext, body: bytes, *, request: Request, dialect: Dialect
    ) -> IngestOutcome:
        """A native body or a Segment `/v1/batch` body, not yet decoded: decoded and
        normalised by a worker process when the pool takes it, here otherwise; then stored
        like `ingest`. A Segment batch takes its user agents from its messages only."""
        received_ms = time.time_ns() // 1_000_000
        meta = self._meta(ctx, request, received_ms, dialect == "native")
        day = self._day(received_ms)
        prepared: PreparedBody | None = None
        if self.pool is not None:
            prepared = await self.pool.prepare(body, meta, day, self.max_batch, dialect)
        if prepared is None:
            prepared = BODY_PREPARERS[dialect](self.normalizer, body, meta, day, self.max_batch)
        block, aliases, rejected, single = prepared
        return await self._store(ctx, block, aliases, rejected, single, received_ms)

    async def ingest(
        self,
        ctx: ProjectContext,
        items: list[Any],
        *,
        request: Request,
        dialect: Dialect,
        segment_type: str | None = None,
        sent_at: Any = None,
        batch_context: Any = None,
        single: bool = False,
        use_header_user_agent: bool = True,
        refused: list[dict[str, Any]] | tuple[()] = (),
    ) -> IngestOutcome:
        """Validate every item, store the valid ones, report the others by index (with
        `refused`, the items refused before: `decode_events`)."""
        received_ms = time.time_ns() // 1_000_000
        meta = self._meta(ctx, request, received_ms, use_header_user_agent)
        block, aliases, rejected = prepare_events(
            self.normalizer,
            items,
            meta,
            day=self._day(received_ms),
            max_batch=self.max_batch,
            dialect=dialect,
            segment_type=segment_type,
            sent_at=sent_at,
            batch_context=batch_context,
            refused=refused,
        )
        return await self._store(ctx, block, aliases, rejected, single, received_ms)

    async def _store(
        self,
        ctx: ProjectContext,
        block: EventBlock,
        aliases: list[tuple[str, str]],
        rejected: list[dict[str, Any]],
        single: bool,
        received_ms: int,
    ) -> IngestOutcome:
        if single and rejected:
            errors = rejected[0]["errors"]
            raise BadRequest(
                f"invalid event: {errors[0]}",
                code="validation_error",
                details=[{"field": e.split(":", 1)[0], "message": e} for e in errors],
            )
        accepted = len(block)
        if accepted or aliases:
            await self.writer.write(ctx.project_id, block, aliases, received_ms=received_ms)
        return IngestOutcome(accepted, rejected)
