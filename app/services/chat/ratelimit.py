"""Requests per minute per API key (`CHAT_RATE_LIMIT_PER_MINUTE`), kept in this process's memory."""

import math
import time
from collections.abc import Callable

from app.services.chat.errors import RateLimited


class RateLimiter:
    """A token bucket per key: a full minute's requests may come at once, then they refill evenly.

    Each API process counts its own requests; behind N replicas a key gets up to N times the limit.
    """

    def __init__(self, per_minute: int, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.per_minute = per_minute
        self._clock = clock
        self._buckets: dict[int, tuple[float, float]] = {}  # key id -> (tokens left, when counted)

    def check(self, key_id: int) -> None:
        """Take one request from the key's bucket, or raise `RateLimited` saying when to come back."""
        if self.per_minute <= 0:
            return
        now = self._clock()
        rate = self.per_minute / 60.0
        tokens, counted = self._buckets.get(key_id, (float(self.per_minute), now))
        tokens = min(float(self.per_minute), tokens + (now - counted) * rate)
        if tokens < 1.0:
            self._buckets[key_id] = (tokens, now)
            wait = math.ceil((1.0 - tokens) / rate)
            raise RateLimited(
                f"Rate limit reached: {self.per_minute} requests per minute for this API key. "
                f"Try again in {wait} s.",
                retry_after=wait,
            )
        self._buckets[key_id] = (tokens - 1.0, now)
