"""Query result caching: in-process and in the machine's Redis."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis

from sextant.analytics.schemas import TrendsQuery
from sextant.analytics.service import AnalyticsService
from sextant.core.cache import Cache, MemoryCache, RedisCache, make_cache

REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture
def redis_cache() -> Iterator[RedisCache]:
    cache = RedisCache(REDIS_URL, prefix=f"sextant-test-{uuid.uuid4().hex[:8]}:")
    yield cache
    client = redis.Redis.from_url(REDIS_URL)
    for key in client.scan_iter(match=cache.prefix + "*"):
        client.delete(key)
    client.close()
    cache.close()


def test_make_cache_picks_redis_only_when_configured() -> None:
    assert isinstance(make_cache(None), MemoryCache)
    chosen = make_cache(REDIS_URL)
    assert isinstance(chosen, RedisCache)
    chosen.close()


@pytest.mark.parametrize("kind", ["memory", "redis"])
def test_entries_expire(kind: str, redis_cache: RedisCache) -> None:
    cache: Cache = MemoryCache() if kind == "memory" else redis_cache
    cache.set("k", b"v", 0.2)
    assert cache.get("k") == b"v"
    assert cache.get("other") is None
    time.sleep(0.3)
    assert cache.get("k") is None
    cache.set("zero", b"v", 0)  # a TTL of 0 disables caching
    assert cache.get("zero") is None


def test_memory_cache_evicts_least_recently_used() -> None:
    cache = MemoryCache(max_entries=2)
    cache.set("a", b"1", 60)
    cache.set("b", b"2", 60)
    assert cache.get("a") == b"1"  # a is now the most recent
    cache.set("c", b"3", 60)
    assert cache.get("b") is None
    assert cache.get("a") == b"1"
    assert cache.get("c") == b"3"


def test_redis_down_is_a_miss_not_an_error() -> None:
    cache = RedisCache("redis://127.0.0.1:1/0")
    cache.set("k", b"v", 10)
    assert cache.get("k") is None


@pytest.mark.parametrize("kind", ["memory", "redis"])
async def test_service_caches_per_project_and_query(
    kind: str, redis_cache: RedisCache, dataset: Callable[..., Any]
) -> None:
    d = dataset()
    d.track("x", "a", "2026-11-10 10:00:00")
    cache: Cache = MemoryCache() if kind == "memory" else redis_cache
    service = AnalyticsService(store=d.store, cache=cache, ttl_seconds=30, clock=d.service.clock)
    query = TrendsQuery(kind="trends", date_from="2026-11-10", date_to="2026-11-10")
    first = await service.run(d.ctx, query)
    assert first["cached"] is False
    d.track("x", "b", "2026-11-10 11:00:00")
    again = await service.run(d.ctx, query)
    assert again["cached"] is True
    assert again["series"][0]["total"] == 1
    assert (await service.run(d.ctx, query, fresh=True))["series"][0]["total"] == 2
    # Another project with the same query is another cache entry.
    other = dataset()
    assert (await service.run(other.ctx, query))["series"][0]["total"] == 0
    assert service.cache_key(d.ctx, query) != service.cache_key(other.ctx, query)
