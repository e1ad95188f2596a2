"""A small in-process TTL cache for facts read on every request and changed rarely.

Each cache says how stale another process may see a change (`ttl`); the process that makes the change
calls `clear()` so it sees it at once. Entries are keyed by database URL too, so two databases in one
process (tests, tools) never share answers.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

V = TypeVar("V")

_registry: list[TTLCache] = []  # type: ignore[type-arg]


class TTLCache(Generic[V]):
    """Maps keys to values for `ttl` seconds, holding at most `max_size` entries."""

    def __init__(self, ttl: float, max_size: int = 10_000) -> None:
        self.ttl = ttl
        self.max_size = max_size
        self._data: dict[Hashable, tuple[float, V]] = {}
        self._lock = threading.Lock()
        _registry.append(self)

    def get_or_load(self, key: Hashable, load: Callable[[], V]) -> V:
        """The cached value for `key`, or `load()`'s result (then cached)."""
        now = time.monotonic()
        hit = self._data.get(key)
        if hit is not None and hit[0] > now:
            return hit[1]
        value = load()
        with self._lock:
            if len(self._data) >= self.max_size:
                self._data.clear()
            self._data[key] = (now + self.ttl, value)
        return value

    def clear(self) -> None:
        """Forget everything (after a change made by this process)."""
        with self._lock:
            self._data.clear()


def clear_all() -> None:
    """Empty every cache (tests)."""
    for cache in _registry:
        cache.clear()
