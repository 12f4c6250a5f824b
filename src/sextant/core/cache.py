"""A small TTL cache for query results: in-process by default, Redis when configured.

Values are bytes (callers serialise). A Redis failure degrades to a cache miss: a slow or
absent cache must never fail a query.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from typing import Protocol

import redis
import structlog

log = structlog.get_logger(__name__)


class Cache(Protocol):
    shared: bool

    def get(self, key: str) -> bytes | None: ...

    def set(self, key: str, value: bytes, ttl_seconds: float) -> None: ...

    def close(self) -> None: ...


class MemoryCache:
    """A bounded LRU with per-entry expiry, safe across threads."""

    shared = False

    def __init__(self, max_entries: int = 2048, max_bytes: int = 256 * 1024 * 1024) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._entries: OrderedDict[str, tuple[float, bytes]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, key: str) -> bytes | None:
        now = time.monotonic()
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            expires, value = entry
            if expires <= now:
                self._drop(key)
                return None
            self._entries.move_to_end(key)
            return value

    def set(self, key: str, value: bytes, ttl_seconds: float) -> None:
        if ttl_seconds <= 0 or len(value) > self.max_bytes:
            return
        with self._lock:
            if key in self._entries:
                self._drop(key)
            self._entries[key] = (time.monotonic() + ttl_seconds, value)
            self._bytes += len(value)
            while len(self._entries) > self.max_entries or self._bytes > self.max_bytes:
                oldest = next(iter(self._entries))
                self._drop(oldest)

    def _drop(self, key: str) -> None:
        _, value = self._entries.pop(key)
        self._bytes -= len(value)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._bytes = 0

    def close(self) -> None:
        self.clear()


class RedisCache:
    """Shared by every worker; entries expire in Redis itself."""

    shared = True

    def __init__(self, url: str, *, prefix: str = "sextant:cache:") -> None:
        self.prefix = prefix
        self._client = redis.Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5)

    def get(self, key: str) -> bytes | None:
        try:
            value = self._client.get(self.prefix + key)
        except redis.RedisError as exc:
            log.warning("cache_get_failed", error=str(exc))
            return None
        return value if isinstance(value, bytes) else None

    def set(self, key: str, value: bytes, ttl_seconds: float) -> None:
        if ttl_seconds <= 0:
            return
        try:
            self._client.set(self.prefix + key, value, px=max(1, int(ttl_seconds * 1000)))
        except redis.RedisError as exc:
            log.warning("cache_set_failed", error=str(exc))

    def close(self) -> None:
        self._client.close()


def make_cache(redis_url: str | None) -> Cache:
    """Redis when a URL is configured, else an in-process cache."""
    if redis_url:
        return RedisCache(redis_url)
    return MemoryCache()
