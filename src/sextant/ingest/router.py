"""Ingestion endpoints: native, Segment HTTP Tracking API, browser beacon.

These routes authenticate with a write key (not a session), so they are mounted without the
user dependencies; each handler resolves the key itself. Write keys are public by design
(they ship in web pages), so every ingestion route answers CORS requests from any origin.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import structlog
from fastapi import APIRouter, Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from sextant.core.errors import AppError, BadRequest, UnsupportedMediaType, error_body
from sextant.core.responses import FastJSONResponse
from sextant.ingest.prepare import decode_object, split_native
from sextant.ingest.schemas import IngestAccepted, SegmentAccepted
from sextant.ingest.service import (
    SEGMENT_MAX_BATCH_BYTES,
    SEGMENT_MAX_EVENT_BYTES,
    IngestService,
    decode_events,
    header_write_key,
    read_body,
)
from sextant.ingest.typed import body_write_key

router = APIRouter(tags=["ingest"])
log = structlog.get_logger(__name__)

_CORS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "POST, OPTIONS",
    "Access-Control-Allow-Headers": (
        "Content-Type, Content-Encoding, Authorization, X-API-Key, X-Request-ID"
    ),
    "Access-Control-Max-Age": "86400",
}
_CORS_SIMPLE = {"Access-Control-Allow-Origin": "*"}


_MEDIA_TYPES = frozenset({"application/json", "text/plain", ""})


def _check_media_type(request: Request) -> None:
    """415 unless the body is declared as JSON: `application/json` (or a `+json` type), or
    `text/plain` as browsers' beacons send it. A body without a Content-Type is read as
    JSON; a form, XML or multipart body is refused rather than guessed at."""
    value = request.headers.get("content-type")
    if not value:
        return
    media = value.partition(";")[0].strip().lower()
    if media in _MEDIA_TYPES or (media.startswith("application/") and media.endswith("+json")):
        return
    raise UnsupportedMediaType(
        f"Content-Type {media!r} is not accepted: send the events as JSON with "
        "Content-Type: application/json (or text/plain, as browsers' beacons do)"
    )


def _service(request: Request) -> IngestService:
    service: IngestService = request.app.state.ingest
    return service


def _error(exc: AppError) -> FastJSONResponse:
    return FastJSONResponse(
        error_body(exc.code, exc.message, exc.details),
        status_code=exc.status_code,
        headers={**exc.headers, **_CORS_SIMPLE},
    )


class _Accepted(Response):
    """A JSON answer with CORS, built without `Response`'s generic header handling.

    Sent for every ingestion request, so the headers are laid out directly and the two
    ASGI messages are sent without the background-task and path-send checks.
    """

    media_type = "application/json"

    def __init__(self, body: bytes, status_code: int) -> None:
        self.body = body
        self.status_code = status_code
        self.background = None
        self.raw_headers = [
            (b"content-length", str(len(body)).encode("latin-1")),
            (b"content-type", b"application/json"),
            (b"access-control-allow-origin", b"*"),
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send(
            {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
        )
        await send({"type": "http.response.body", "body": self.body})


def _accepted(body: bytes, status: int = 202) -> Response:
    return _Accepted(body, status)


async def _native(request: Request, *, beacon: bool) -> Response:
    service = _service(request)
    try:
        _check_media_type(request)
        if beacon:
            body = await read_body(request, service.max_body)
            payload, refused = decode_events(body)
            secret = None
            if isinstance(payload, dict):
                secret = payload.pop("write_key", None) or payload.pop("writeKey", None)
            ctx = service.authenticate(
                secret if isinstance(secret, str) else header_write_key(request)
            )
            items, sent_at, context, single = split_native(payload)
            outcome = await service.ingest(
                ctx,
                items,
                request=request,
                dialect="native",
                sent_at=sent_at,
                batch_context=context,
                single=single,
                refused=refused,
            )
        else:
            # The key comes before the body: a stranger's megabyte is never parsed.
            ctx = service.authenticate(header_write_key(request))
            body = await read_body(request, service.max_body)
            outcome = await service.ingest_body(ctx, body, request=request, dialect="native")
    except AppError as exc:
        return _error(exc)
    return _accepted(outcome.body())


@router.post(
    "/api/v1/events",
    status_code=202,
    response_model=IngestAccepted,
    responses={400: {}, 401: {}, 413: {}, 415: {}, 429: {}, 503: {}},
)
async def ingest_events(request: Request) -> Response:
    """Store one event or a batch of up to 1,000 (1 MB) with a write key.

    Answers once the events are stored. Invalid events of a batch are listed in
    `rejected` by index and the rest is stored; a single invalid event answers 400.
    The event format is documented in `sextant.ingest.schemas` (`NativeEvent`).
    """
    return await _native(request, beacon=False)


@router.post(
    "/api/v1/collect",
    status_code=202,
    response_model=IngestAccepted,
    responses={400: {}, 401: {}, 413: {}, 415: {}, 429: {}, 503: {}},
)
async def collect(request: Request) -> Response:
    """Browser beacon: a native event or batch as `text/plain` JSON with `write_key` inside."""
    return await _native(request, beacon=True)


@router.options("/api/v1/events", include_in_schema=False)
@router.options("/api/v1/collect", include_in_schema=False)
@router.options("/v1/{kind}", include_in_schema=False)
async def preflight() -> Response:
    return Response(status_code=204, headers=_CORS)


_SEGMENT_TYPES = {"track", "identify", "page", "screen", "group", "alias"}


async def _segment_body(request: Request, service: IngestService, kind: str) -> bytes:
    body = await read_body(request, service.max_body)
    limit = SEGMENT_MAX_BATCH_BYTES if kind == "batch" else SEGMENT_MAX_EVENT_BYTES
    if len(body) > limit:
        raise BadRequest(
            f"{'batch' if kind == 'batch' else 'message'} larger than {limit // 1024} KB "
            "(the Segment API's limit)",
            code="payload_too_large",
        )
    return body


async def _segment(request: Request, kind: str) -> Response:
    service = _service(request)
    try:
        _check_media_type(request)
        # A query parameter is how RudderStack's beacon (`/beacon/v1/batch`) sends its key.
        secret = header_write_key(request) or request.query_params.get("writeKey")
        if kind == "batch":
            # A batch is decoded once, where it is normalised (a worker process when the
            # pool takes it): the key in a header comes before the body, as for native
            # bodies; one in the body is read without building the rest.
            if secret:
                ctx = service.authenticate(secret)
                body = await _segment_body(request, service, kind)
            else:
                body = await _segment_body(request, service, kind)
                try:
                    body_key = body_write_key(body)
                except ValueError:
                    body_key = decode_object(body).get("writeKey")  # 400 saying what is wrong
                ctx = service.authenticate(body_key if isinstance(body_key, str) else None)
            outcome = await service.ingest_body(ctx, body, request=request, dialect="segment")
        else:
            payload = decode_object(await _segment_body(request, service, kind))
            if not secret:
                body_key = payload.get("writeKey")
                secret = body_key if isinstance(body_key, str) else None
            ctx = service.authenticate(secret)
            outcome = await service.ingest(
                ctx,
                [payload],
                request=request,
                dialect="segment",
                segment_type=kind,
                single=True,
                use_header_user_agent=False,
            )
    except AppError as exc:
        return _error(exc)
    return _accepted(outcome.body(success=True), status=200)


def _segment_route(kind: str) -> None:
    async def endpoint(request: Request) -> Response:
        return await _segment(request, kind)

    label = "a batch of messages" if kind == "batch" else f"a Segment `{kind}` call"
    endpoint.__name__ = f"segment_{kind}"
    endpoint.__doc__ = (
        f"Segment HTTP Tracking API: {label}. The write key is the Basic auth username "
        "(empty password) or `writeKey` in the body."
    )
    router.add_api_route(
        f"/v1/{kind}",
        endpoint,
        methods=["POST"],
        response_model=SegmentAccepted,
        responses={400: {}, 401: {}, 413: {}, 415: {}, 429: {}, 503: {}},
    )


for _kind in (*sorted(_SEGMENT_TYPES), "batch"):
    _segment_route(_kind)

# Other paths of the same calls: Segment's browser SDK (analytics.js 2.0, `@segment/
# analytics-next`) posts to the first letter of the call's type (`/v1/t`, and `/v1/b` for its
# batches), text/plain with `writeKey` in the body; RudderStack's JavaScript SDK sends its
# page-unload beacon to `/beacon/v1/batch?writeKey=...`.
_SEGMENT_ALIASES = {f"/v1/{kind[0]}": kind for kind in (*_SEGMENT_TYPES, "batch")}
_SEGMENT_ALIASES["/beacon/v1/batch"] = "batch"


def _alias_route(path: str, kind: str) -> None:
    async def endpoint(request: Request) -> Response:
        return await _segment(request, kind)

    router.add_api_route(path, endpoint, methods=["POST"], include_in_schema=False)
    router.add_api_route(path, preflight, methods=["OPTIONS"], include_in_schema=False)


for _path, _kind in _SEGMENT_ALIASES.items():
    _alias_route(_path, _kind)


class _RouteLabel:
    """What the request-metrics middleware reads from `scope["route"]`."""

    __slots__ = ("path",)

    def __init__(self, path: str) -> None:
        self.path = path


_FAST_PATHS: dict[str, tuple[Callable[[Request], Awaitable[Response]], _RouteLabel]] = {
    "/api/v1/events": (
        lambda request: _native(request, beacon=False),
        _RouteLabel("/api/v1/events"),
    ),
    "/api/v1/collect": (
        lambda request: _native(request, beacon=True),
        _RouteLabel("/api/v1/collect"),
    ),
    **{
        path: ((lambda k: lambda request: _segment(request, k))(kind), _RouteLabel(path))
        for path, kind in (
            *((f"/v1/{kind}", kind) for kind in (*_SEGMENT_TYPES, "batch")),
            *_SEGMENT_ALIASES.items(),
        )
    },
}


class IngestFastPath:
    """Serves the ingestion endpoints straight from ASGI, ahead of FastAPI's router.

    The routes above stay registered (OpenAPI, and the fallback when this middleware is not
    installed); this shortcut skips matching ~40 routes and the dependency machinery, which
    cost more than the whole ingestion pipeline for a single event (benchmarks/ingest.py).
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            entry = _FAST_PATHS.get(scope["path"])
            if entry is not None:
                method = scope["method"]
                if method == "POST" or method == "OPTIONS":
                    handler, label = entry
                    scope["route"] = label
                    request = Request(scope, receive)
                    if method == "OPTIONS":
                        response = Response(status_code=204, headers=_CORS)
                    else:
                        try:
                            response = await handler(request)
                        except Exception as exc:
                            log.exception("ingest_unhandled_error", error=repr(exc))
                            response = FastJSONResponse(
                                error_body(
                                    "internal_error",
                                    "an internal error occurred; it has been logged",
                                ),
                                status_code=500,
                                headers=_CORS_SIMPLE,
                            )
                    await response(scope, receive, send)
                    return
        await self.app(scope, receive, send)
