"""What SextantMiddleware adds to a request of a FastAPI app.

Calls the same app through ASGI directly (no sockets, so the difference is the middleware
and nothing else), with and without the middleware, in alternating rounds, and prints the
median cost per request. The client sends through a transport that answers at once, so the
figure is the request-path cost (building the event and queueing it), not network time.

    .venv/bin/python benchmarks/sdk_middleware.py [--requests 20000] [--rounds 7]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from typing import Any

import httpx
from fastapi import FastAPI

from sextant.sdk import Client, SextantMiddleware


def build_app(client: Client | None) -> FastAPI:
    app = FastAPI()

    @app.get("/items/{item_id}")
    async def get_item(item_id: int) -> dict[str, Any]:
        return {"id": item_id, "name": "lamp"}

    if client is not None:
        app.add_middleware(SextantMiddleware, client=client)
    return app


async def run(app: Any, n: int) -> float:
    """Seconds per request for `n` GET /items/{id} requests through the ASGI app."""
    sent: list[Any] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    started = time.perf_counter()
    for i in range(n):
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "GET",
            "scheme": "http",
            "path": f"/items/{i}",
            "raw_path": f"/items/{i}".encode(),
            "root_path": "",
            "query_string": b"",
            "headers": [(b"host", b"bench")],
            "client": ("10.0.0.1", 5000),
            "server": ("bench", 80),
        }
        await app(scope, receive, send)
    elapsed = time.perf_counter() - started
    sent.clear()
    return elapsed / n


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()

    transport = httpx.MockTransport(lambda request: httpx.Response(202, json={"accepted": 0}))
    client = Client(
        "sx_w_bench",
        "http://sextant.invalid",
        transport=transport,
        max_queue_size=1_000_000,
        batch_size=500,
    )
    plain = build_app(None)
    observed = build_app(client)
    for app in (plain, observed):  # warm up: routing tables, imports, caches
        await run(app, 2_000)
    without: list[float] = []
    with_mw: list[float] = []
    for _ in range(args.rounds):
        without.append(await run(plain, args.requests))
        with_mw.append(await run(observed, args.requests))
    client.flush(timeout=60)
    client.shutdown()

    base = statistics.median(without) * 1e6
    observed_us = statistics.median(with_mw) * 1e6
    print(f"requests per round: {args.requests}, rounds: {args.rounds}")
    print(f"without middleware: {base:8.1f} µs/request")
    print(f"with middleware:    {observed_us:8.1f} µs/request")
    print(f"added:              {observed_us - base:8.1f} µs/request (median of rounds)")
    print(f"events delivered:   {client.stats.sent} (dropped {client.stats.dropped})")


if __name__ == "__main__":
    asyncio.run(main())
