"""Python client: queue events in memory, send them in batches from a background thread.

Calls never block on the network and never raise on delivery problems: a full queue drops
the event (counted in `dropped`), a batch the server keeps refusing is counted in `failed`.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import queue
import random
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from sextant import __version__

log = logging.getLogger("sextant.sdk")

LIBRARY = {"name": "sextant-python", "version": __version__}
EVENTS_PATH = "/api/v1/events"
# The server takes at most 1,000 events / 1 MB per request; stay well inside both.
MAX_BATCH_EVENTS = 500
MAX_BATCH_BYTES = 900_000
_RETRYABLE = frozenset({408, 425, 429, 500, 502, 503, 504})

Event = dict[str, Any]


@dataclass
class DeliveryStats:
    """What happened to the events handed to the client so far."""

    queued: int = 0
    sent: int = 0
    dropped: int = 0  # refused because the queue was full
    failed: int = 0  # rejected by the server or given up on after the last retry
    retries: int = 0


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _timestamp(value: datetime | str | None) -> str:
    if value is None:
        return _now()
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return value


def retry_after_seconds(header: str | None) -> float | None:
    """Parse `Retry-After` (delta seconds or an HTTP date) into seconds to wait."""
    if not header:
        return None
    header = header.strip()
    try:
        return max(0.0, float(header))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(header)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


class Client:
    """Send events to Sextant with a write key.

    `Client("sx_w_...", "https://sextant.example.com").track("signup", user_id="u1")`.
    Events are batched by a daemon thread and flushed at interpreter exit.
    """

    def __init__(
        self,
        write_key: str,
        host: str = "http://127.0.0.1:8000",
        *,
        max_queue_size: int = 10_000,
        batch_size: int = 100,
        flush_interval: float = 0.5,
        max_retries: int = 6,
        backoff_base: float = 0.5,
        backoff_max: float = 30.0,
        timeout: float = 10.0,
        enabled: bool = True,
        on_error: Callable[[Exception | httpx.Response, list[Event]], None] | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if not write_key:
            raise ValueError("write_key is required (a project's sx_w_... key)")
        if batch_size < 1 or batch_size > MAX_BATCH_EVENTS:
            raise ValueError(f"batch_size must be between 1 and {MAX_BATCH_EVENTS}")
        self.write_key = write_key
        self.host = host.rstrip("/")
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self.max_retries = max_retries
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.enabled = enabled
        self.on_error = on_error
        self.stats = DeliveryStats()
        self._queue: queue.Queue[Event] = queue.Queue(maxsize=max_queue_size)
        self._http = httpx.Client(
            base_url=self.host,
            timeout=timeout,
            transport=transport,
            headers={
                "X-API-Key": write_key,
                "User-Agent": f"sextant-python/{__version__}",
                "Content-Type": "application/json",
            },
        )
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._closed = False
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="sextant-sdk", daemon=True)
        self._thread.start()
        atexit.register(self.shutdown)

    # Public API ---------------------------------------------------------------------------

    def track(
        self,
        event: str,
        properties: Mapping[str, Any] | None = None,
        *,
        user_id: str | None = None,
        anonymous_id: str | None = None,
        context: Mapping[str, Any] | None = None,
        timestamp: datetime | str | None = None,
        message_id: str | None = None,
        session_id: str | None = None,
    ) -> str:
        """Record a custom event; returns its message id."""
        if not event:
            raise ValueError("event name is required")
        message: Event = {"type": "track", "event": event, "properties": dict(properties or {})}
        if session_id:
            message["session_id"] = session_id
        return self._enqueue(
            message,
            user_id=user_id,
            anonymous_id=anonymous_id,
            context=context,
            timestamp=timestamp,
            message_id=message_id,
        )

    def identify(
        self,
        user_id: str,
        traits: Mapping[str, Any] | None = None,
        *,
        anonymous_id: str | None = None,
        context: Mapping[str, Any] | None = None,
        timestamp: datetime | str | None = None,
        message_id: str | None = None,
    ) -> str:
        """Attach traits to a user and link an anonymous id to them."""
        if not user_id:
            raise ValueError("user_id is required")
        return self._enqueue(
            {"type": "identify", "traits": dict(traits or {})},
            user_id=user_id,
            anonymous_id=anonymous_id,
            context=context,
            timestamp=timestamp,
            message_id=message_id,
        )

    def page(
        self,
        url: str,
        properties: Mapping[str, Any] | None = None,
        *,
        name: str | None = None,
        title: str | None = None,
        referrer: str | None = None,
        user_id: str | None = None,
        anonymous_id: str | None = None,
        context: Mapping[str, Any] | None = None,
        timestamp: datetime | str | None = None,
        message_id: str | None = None,
        session_id: str | None = None,
    ) -> str:
        """Record a page view of `url` (server-side rendered pages, for example)."""
        if not url:
            raise ValueError("url is required")
        page: dict[str, Any] = {"url": url}
        if title:
            page["title"] = title
        if referrer:
            page["referrer"] = referrer
        ctx = {**dict(context or {}), "page": {**dict((context or {}).get("page", {})), **page}}
        message: Event = {"type": "page", "properties": dict(properties or {})}
        if name:
            message["name"] = name
        if session_id:
            message["session_id"] = session_id
        return self._enqueue(
            message,
            user_id=user_id,
            anonymous_id=anonymous_id,
            context=ctx,
            timestamp=timestamp,
            message_id=message_id,
        )

    def alias(
        self,
        previous_id: str,
        user_id: str,
        *,
        context: Mapping[str, Any] | None = None,
        timestamp: datetime | str | None = None,
        message_id: str | None = None,
    ) -> str:
        """Declare that `previous_id` and `user_id` are the same person."""
        if not previous_id or not user_id:
            raise ValueError("previous_id and user_id are required")
        return self._enqueue(
            {"type": "alias", "previous_id": previous_id},
            user_id=user_id,
            anonymous_id=None,
            context=context,
            timestamp=timestamp,
            message_id=message_id,
        )

    def api_request(
        self,
        *,
        method: str,
        route: str,
        status: int,
        duration_ms: float,
        request_bytes: int = 0,
        response_bytes: int = 0,
        distinct_id: str | None = None,
        user_id: str | None = None,
        properties: Mapping[str, Any] | None = None,
        context: Mapping[str, Any] | None = None,
        timestamp: datetime | str | None = None,
    ) -> str:
        """Record one HTTP request served by your API (what the ASGI middleware calls)."""
        return self._enqueue(
            {
                "type": "api",
                "event": "$api_request",
                "properties": dict(properties or {}),
                "api": {
                    "method": method,
                    "route": route,
                    "status": status,
                    "duration_ms": duration_ms,
                    "request_bytes": request_bytes,
                    "response_bytes": response_bytes,
                },
            },
            user_id=user_id,
            anonymous_id=distinct_id or "api",
            context=context,
            timestamp=timestamp,
            message_id=None,
        )

    def web3(
        self,
        event: str,
        *,
        chain_id: int,
        wallet: str | None = None,
        contract: str | None = None,
        tx_hash: str | None = None,
        value: int | str | None = None,
        token: str | None = None,
        status: str | None = None,
        properties: Mapping[str, Any] | None = None,
        user_id: str | None = None,
        anonymous_id: str | None = None,
        context: Mapping[str, Any] | None = None,
        timestamp: datetime | str | None = None,
        message_id: str | None = None,
    ) -> str:
        """Record a wallet or on-chain event; `value` in the token's smallest unit (wei)."""
        fields: dict[str, Any] = {"chain_id": chain_id}
        for key, item in (
            ("wallet", wallet),
            ("contract", contract),
            ("tx_hash", tx_hash),
            ("token", token),
            ("status", status),
        ):
            if item is not None:
                fields[key] = item
        if value is not None:
            fields["value"] = str(value)  # a decimal string keeps big integers exact
        return self._enqueue(
            {"type": "web3", "event": event, "properties": dict(properties or {}), "web3": fields},
            user_id=user_id,
            anonymous_id=anonymous_id or wallet,
            context=context,
            timestamp=timestamp,
            message_id=message_id,
        )

    def flush(self, timeout: float | None = None) -> bool:
        """Send everything queued so far; True when the queue drained within `timeout`."""
        deadline = None if timeout is None else time.monotonic() + timeout
        self._wake.set()
        with self._queue.all_tasks_done:
            while self._queue.unfinished_tasks:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._queue.all_tasks_done.wait(0.05 if remaining is None else min(remaining, 0.05))
                self._wake.set()
        return True

    def shutdown(self, timeout: float | None = 10.0) -> None:
        """Flush, stop the background thread and close the connection pool."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self.flush(timeout)
        self._stopping.set()
        self._wake.set()
        self._thread.join(timeout)
        self._http.close()
        atexit.unregister(self.shutdown)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()

    # Internals ----------------------------------------------------------------------------

    def _enqueue(
        self,
        message: Event,
        *,
        user_id: str | None,
        anonymous_id: str | None,
        context: Mapping[str, Any] | None,
        timestamp: datetime | str | None,
        message_id: str | None,
    ) -> str:
        if not user_id and not anonymous_id:
            raise ValueError("user_id or anonymous_id is required")
        mid = message_id or str(uuid.uuid4())
        message["message_id"] = mid
        message["timestamp"] = _timestamp(timestamp)
        if user_id:
            message["user_id"] = str(user_id)
        if anonymous_id:
            message["anonymous_id"] = str(anonymous_id)
        ctx = dict(context or {})
        ctx.setdefault("library", LIBRARY)
        message["context"] = ctx
        if not self.enabled or self._closed:
            return mid
        try:
            self._queue.put_nowait(message)
        except queue.Full:
            self.stats.dropped += 1
            return mid
        self.stats.queued += 1
        if self._queue.qsize() >= self.batch_size:
            self._wake.set()
        return mid

    def _next_batch(self) -> list[Event]:
        batch: list[Event] = []
        size = 0
        while len(batch) < self.batch_size:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            batch.append(item)
            size += 300 + len(str(item))  # rough, cheap upper bound of the JSON size
            if size >= MAX_BATCH_BYTES:
                break
        return batch

    def _run(self) -> None:
        while True:
            self._wake.wait(self.flush_interval)
            self._wake.clear()
            while True:
                batch = self._next_batch()
                if not batch:
                    break
                try:
                    self._send(batch)
                except Exception:  # the worker must survive anything
                    log.exception("sextant: unexpected error sending a batch")
                    self.stats.failed += len(batch)
                finally:
                    for _ in batch:
                        self._queue.task_done()
            if self._stopping.is_set() and self._queue.empty():
                return

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        delay = min(self.backoff_max, self.backoff_base * (2**attempt))
        delay = delay * (0.5 + random.random() / 2)  # jitter: spread out retrying clients
        if retry_after is not None:
            delay = max(delay, min(retry_after, self.backoff_max))
        return float(delay)

    def _send(self, batch: list[Event]) -> None:
        sent_at = _now()  # lets the server correct for this machine's clock skew
        payload = {"batch": batch, "sent_at": sent_at}
        last: Exception | httpx.Response | None = None
        for attempt in range(self.max_retries + 1):
            retry_after: float | None = None
            try:
                response = self._http.post(EVENTS_PATH, json=payload)
            except httpx.HTTPError as exc:
                last = exc
            else:
                if response.status_code < 300:
                    self._count_accepted(response, batch)
                    return
                last = response
                if response.status_code not in _RETRYABLE:
                    log.warning(
                        "sextant: batch of %d rejected with %d: %s",
                        len(batch),
                        response.status_code,
                        response.text[:500],
                    )
                    break
                retry_after = retry_after_seconds(response.headers.get("retry-after"))
            if attempt == self.max_retries:
                break
            self.stats.retries += 1
            time.sleep(self._backoff(attempt, retry_after))
        self.stats.failed += len(batch)
        if self.on_error is not None and last is not None:
            with contextlib.suppress(Exception):
                self.on_error(last, batch)

    def _count_accepted(self, response: httpx.Response, batch: list[Event]) -> None:
        rejected: list[Any] = []
        with contextlib.suppress(ValueError):
            body = response.json()
            if isinstance(body, dict):
                rejected = body.get("rejected") or []
        if rejected:
            log.warning("sextant: %d events rejected: %s", len(rejected), rejected[:3])
        self.stats.failed += len(rejected)
        self.stats.sent += len(batch) - len(rejected)
