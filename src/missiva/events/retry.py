"""When a failed delivery is tried again, and when it is given up (dead-lettered).

Exponential backoff with jitter: 10 s, 20 s, 40 s ... capped at 6 h, each delay spread by +/-20 % so that
an endpoint coming back is not hit by every queued event at the same second. Retries go on for at least
25 hours after the first attempt (as MailUp promises), then the delivery is dead.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True)
class RetryPolicy:
    """Backoff parameters; the defaults cover 25 hours in about 15 attempts."""

    first_delay: timedelta = timedelta(seconds=10)
    factor: float = 2.0
    max_delay: timedelta = timedelta(hours=6)
    jitter: float = 0.2
    window: timedelta = timedelta(hours=25)

    def __post_init__(self) -> None:
        if self.first_delay <= timedelta(0) or self.factor < 1 or not 0 <= self.jitter < 1:
            raise ValueError("retry policy needs a positive first delay, factor >= 1 and 0 <= jitter < 1")

    def delay(self, attempts: int, rng: random.Random) -> timedelta:
        """The wait after the `attempts`-th failed attempt (1 for the first failure)."""
        exponent = max(attempts - 1, 0)
        base = self.first_delay.total_seconds() * self.factor**exponent
        base = min(base, self.max_delay.total_seconds())
        return timedelta(seconds=base * rng.uniform(1 - self.jitter, 1 + self.jitter))

    def gives_up(self, window_start: datetime, now: datetime) -> bool:
        """Whether a failure at `now` ends the delivery (its retry window has passed)."""
        return now - window_start >= self.window
