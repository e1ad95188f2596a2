"""A relay's message rate limit: ``rate=100/s``, ``rate=3000/m`` or ``rate=50000/h``.

Messages are spaced ``1/rate`` apart with a small burst allowance (a tenth of a second's worth, at
least one message), the generic cell rate algorithm: in any interval of T seconds a relay gets at most
``rate * T + burst`` messages from one sender process, and the average never exceeds the rate however
late the event loop wakes up.
"""

from __future__ import annotations

import asyncio
import re
import time

from missiva.delivery.smtp.relay import RelayConfigError

_RATE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*/\s*(s|sec|second|m|min|minute|h|hour)\s*\Z", re.IGNORECASE)
_PER = {"s": 1.0, "m": 60.0, "h": 3600.0}
BURST_SECONDS = 0.1


def parse_rate(value: str) -> float:
    """Messages per second from ``N/s``, ``N/m`` or ``N/h``; RelayConfigError for anything else."""
    match = _RATE.match(value)
    if match is None:
        raise RelayConfigError(f"rate {value!r} must look like 100/s, 3000/m or 50000/h")
    count = float(match.group(1))
    if count <= 0:
        raise RelayConfigError(f"rate {value!r} must be positive")
    return count / _PER[match.group(2)[0].lower()]


class RateLimiter:
    """Hands out send slots at `per_second` on average; shared by every session to one relay."""

    __slots__ = ("_interval", "_tat", "_tolerance", "per_second")

    def __init__(self, per_second: float) -> None:
        if per_second <= 0:
            raise ValueError("per_second must be positive")
        self.per_second = per_second
        self._interval = 1.0 / per_second
        burst = max(1, int(per_second * BURST_SECONDS))
        self._tolerance = (burst - 1) * self._interval
        self._tat = 0.0  # theoretical arrival time of the next message

    def try_take(self) -> bool:
        """Take a slot if one is free now."""
        now = time.monotonic()
        tat = max(self._tat, now)
        if tat - now > self._tolerance:
            return False
        self._tat = tat + self._interval
        return True

    def give_back(self) -> None:
        """Return a slot taken for a message that was not sent after all."""
        self._tat -= self._interval

    async def take(self) -> None:
        """Wait for a slot."""
        while not self.try_take():
            now = time.monotonic()
            await asyncio.sleep(max(0.001, max(self._tat, now) - now - self._tolerance))
