"""Rate limits with the `limits` library: in-process by default, Redis when configured."""

from __future__ import annotations

import math
import time

from limits import RateLimitItem, parse, storage, strategies

from sextant.core.errors import TooManyRequests


class RateLimiter:
    """Moving-window counters shared by every worker when Redis backs them."""

    def __init__(self, redis_url: str | None = None) -> None:
        uri = redis_url if redis_url else "memory://"
        self.storage = storage.storage_from_string(uri)
        self.strategy = strategies.FixedWindowRateLimiter(self.storage)
        self._parsed: dict[str, RateLimitItem] = {}
        self.shared = bool(redis_url)

    def _item(self, limit: str) -> RateLimitItem:
        item = self._parsed.get(limit)
        if item is None:
            item = self._parsed[limit] = parse(limit)
        return item

    def retry_after(self, limit: str, *keys: str) -> int:
        stats = self.strategy.get_window_stats(self._item(limit), *keys)
        return max(1, math.ceil(stats.reset_time - time.time()))

    def hit(
        self, limit: str, *keys: str, message: str = "too many requests", cost: int = 1
    ) -> None:
        """Count one use; raise 429 with Retry-After when the limit is exceeded."""
        if not self.strategy.hit(self._item(limit), *keys, cost=cost):
            raise TooManyRequests(message, retry_after=self.retry_after(limit, *keys))

    def allowed(self, limit: str, *keys: str) -> bool:
        """Whether one more use would be within the limit (counts nothing)."""
        return bool(self.strategy.test(self._item(limit), *keys))

    def count(self, limit: str, *keys: str) -> None:
        """Count one use without raising."""
        self.strategy.hit(self._item(limit), *keys)

    def reset(self, limit: str, *keys: str) -> None:
        self.strategy.clear(self._item(limit), *keys)

    def ping(self) -> bool:
        try:
            return bool(self.storage.check())
        except Exception:
            return False
