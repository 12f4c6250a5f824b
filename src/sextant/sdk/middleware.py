"""ASGI middleware that records every HTTP request of a FastAPI/Starlette app in Sextant.

    app.add_middleware(SextantMiddleware, client=Client("sx_w_...", "https://sextant.example"))

Each request becomes one `$api_request` event with the method, the route template
(`/items/{item_id}`, never the raw path, so reports group by endpoint), the status, the
duration and the request/response body sizes. The work on the request path is a few
dictionary operations and a non-blocking queue put: sending happens in the client's thread.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sextant.sdk.client import Client

UNMATCHED_ROUTE = "(unmatched)"


def default_distinct_id(scope: Scope) -> str:
    """A stable pseudonymous id per client address (the address itself is not sent)."""
    client = scope.get("client")
    host = client[0] if client else "unknown"
    return "ip:" + hashlib.blake2b(host.encode(), digest_size=8).hexdigest()


class SextantMiddleware:
    """Pure ASGI middleware: one `$api_request` event per HTTP request."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        client: Client,
        exclude_paths: Iterable[str] = (),
        distinct_id: Callable[[Scope], str | None] = default_distinct_id,
    ) -> None:
        self.app = app
        self.client = client
        self.exclude_paths = tuple(exclude_paths)
        self.distinct_id = distinct_id

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or (
            self.exclude_paths and scope["path"].startswith(self.exclude_paths)
        ):
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500
        request_bytes = 0
        response_bytes = 0

        async def receive_counting() -> Message:
            nonlocal request_bytes
            message = await receive()
            if message["type"] == "http.request":
                request_bytes += len(message.get("body", b""))
            return message

        async def send_counting(message: Message) -> None:
            nonlocal status, response_bytes
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body":
                response_bytes += len(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive_counting, send_counting)
        finally:
            duration_ms = (time.perf_counter() - started) * 1000.0
            self._record(scope, status, duration_ms, request_bytes, response_bytes)

    def _record(
        self,
        scope: Scope,
        status: int,
        duration_ms: float,
        request_bytes: int,
        response_bytes: int,
    ) -> None:
        # The router stores the matched route in the scope; its path is the template.
        route = scope.get("route")
        template = getattr(route, "path", None) or UNMATCHED_ROUTE
        if not request_bytes:
            for name, value in scope["headers"]:
                if name == b"content-length":
                    request_bytes = int(value) if value.isdigit() else 0
                    break
        try:
            self.client.api_request(
                method=scope["method"],
                route=scope.get("root_path", "") + template,
                status=status,
                duration_ms=round(duration_ms, 3),
                request_bytes=request_bytes,
                response_bytes=response_bytes,
                distinct_id=self.distinct_id(scope) or "api",
            )
        except Exception:  # analytics must never break the app it observes
            return
