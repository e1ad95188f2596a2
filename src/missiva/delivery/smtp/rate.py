"""A relay's message rate limit: ``rate=100/s``, ``rate=3000/m`` or ``rate=50000/h``.

Messages are spaced ``1/rate`` apart with a small burst allowance (a tenth of a second's worth, at
least one message): the generic cell rate algorithm (GCRA), whose state is one number, the theoretical
arrival time (TAT) of the next message.

`RateLimiter` keeps that number in the process: in any interval of T seconds a relay gets at most
``rate * T + burst`` messages from one process. `SharedRateLimiter` keeps it in a `SlotSource` that
every process of an installation shares (the database, `missiva.delivery.relay_rates`): a process
reserves a few slots at a time (a tenth of a second's worth), each with its own time on the shared
schedule, and spends each no earlier than ``burst - 1`` slots before its time and no later than
``burst`` slots after it. Over any interval of T seconds the relay then gets at most
``rate * T + 2 * burst`` messages from all processes together (see `SharedRateLimiter`). Slots a
process reserved and did not use are lost: the rate may be undershot, never overshot.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import re
import time
from collections import deque
from dataclasses import dataclass
from typing import Protocol

from missiva.delivery.smtp.relay import Relay, RelayConfigError

log = logging.getLogger(__name__)

_RATE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*/\s*(s|sec|second|m|min|minute|h|hour)\s*\Z", re.IGNORECASE)
_PER = {"s": 1.0, "m": 60.0, "h": 3600.0}
BURST_SECONDS = 0.1
RETRY_SECONDS = 1.0  # wait before asking a failing slot source again
MAX_KEY = 255


def parse_rate(value: str) -> float:
    """Messages per second from ``N/s``, ``N/m`` or ``N/h``; RelayConfigError for anything else."""
    match = _RATE.match(value)
    if match is None:
        raise RelayConfigError(f"rate {value!r} must look like 100/s, 3000/m or 50000/h")
    count = float(match.group(1))
    if count <= 0:
        raise RelayConfigError(f"rate {value!r} must be positive")
    return count / _PER[match.group(2)[0].lower()]


def burst_of(per_second: float) -> int:
    """Messages a relay may get at once: a tenth of a second's worth, at least one."""
    return max(1, int(per_second * BURST_SECONDS))


def relay_key(relay: Relay) -> str:
    """The name of a rated relay's shared schedule: ``host:port``, the login's fingerprint, the rate.

    Never the credentials: a login only shows as the first 16 hex digits of its SHA-256, so two
    accounts at one provider (two limits) get two schedules. The rate is part of the name so that a
    changed rate starts a fresh schedule instead of inheriting one reserved far ahead at a slower rate.
    """
    if not relay.rate:
        raise ValueError(f"relay {relay.name} has no rate")
    key = relay.name.lower()
    if relay.username:
        key += "/" + hashlib.sha256(relay.username.encode()).hexdigest()[:16]
    return f"{key} {relay.rate:.6g}/s"


class Limiter(Protocol):
    """What the pool asks of a relay's rate limit."""

    def try_take(self) -> bool:
        """Take a slot if one is free now."""
        ...

    def give_back(self) -> None:
        """Return the slot just taken for a message that was not sent after all."""
        ...

    async def take(self) -> None:
        """Wait for a slot."""
        ...

    def close(self) -> None:
        """Stop background work."""
        ...


class RateLimiter:
    """Hands out send slots at `per_second` on average; shared by every session to one relay."""

    __slots__ = ("_interval", "_tat", "_tolerance", "per_second")

    def __init__(self, per_second: float) -> None:
        if per_second <= 0:
            raise ValueError("per_second must be positive")
        self.per_second = per_second
        self._interval = 1.0 / per_second
        self._tolerance = (burst_of(per_second) - 1) * self._interval
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

    def close(self) -> None:
        """Nothing runs in the background."""


@dataclass(frozen=True, slots=True)
class Grant:
    """Slots reserved on a shared schedule, in integer microseconds since the epoch.

    ``count`` slots at ``first``, ``first + interval``, ...; with ``count == 0`` the schedule is
    booked up to ``first``, and a new reservation can succeed from ``first - horizon`` on.
    """

    first: int
    count: int


class SlotSource(Protocol):
    """A rate schedule shared by every process (implemented on the database by `relay_rates`).

    `reserve` runs in a worker thread: it may block on I/O.
    """

    def reserve(self, key: str, wanted: int, interval: int, horizon: int, now: int | None = None) -> Grant:
        """Reserve up to `wanted` consecutive slots `interval` µs apart on `key`'s schedule.

        No slot is later than ``now + horizon`` (µs since the epoch; None: the clock, read once the
        schedule is locked, so waiting for the lock costs no slots) and none is shared with another
        reservation: apply `schedule` to the stored TAT atomically.
        """
        ...


def check_reservation(key: str, wanted: int, interval: int, horizon: int, now: int | None) -> None:
    """ValueError naming the argument a `SlotSource.reserve` call cannot use."""
    if not key or len(key) > MAX_KEY:
        raise ValueError(f"relay key must be 1 to {MAX_KEY} characters, got {len(key)}")
    if wanted < 1:
        raise ValueError(f"wanted must be at least 1 slot, got {wanted}")
    if interval < 1:
        raise ValueError(f"interval must be at least 1 µs, got {interval}")
    if horizon < interval:
        raise ValueError(f"horizon ({horizon} µs) must be at least one interval ({interval} µs)")
    if now is not None and now < 0:
        raise ValueError(f"now must be µs since the epoch, got {now}")


def schedule(tat: int, now: int, wanted: int, interval: int, horizon: int) -> tuple[Grant, int]:
    """One GCRA reservation on a stored TAT: the grant and the new TAT (µs since the epoch).

    The first slot is the later of the TAT and now (time not used is not saved up); slots follow
    `interval` apart up to ``now + horizon``, at most `wanted` of them.
    """
    first = max(tat, now)
    room = now + horizon - first
    count = 0 if room < 0 else min(wanted, room // interval + 1)
    return Grant(first, count), first + count * interval if count else tat


class SharedRateLimiter:
    """A relay's rate shared with every process that reserves slots from the same `SlotSource`.

    Slots are reserved a block at a time (a tenth of a second's worth, at least one) in a worker
    thread, the next block as soon as fewer than half a block are left. A slot at time t (on the shared
    schedule) is spent no earlier than ``t - (burst - 1) / rate`` (the burst of `RateLimiter`) and
    dropped unused after ``t + burst / rate``. Slots are at least ``1 / rate`` apart on the schedule,
    so the messages of any interval of T seconds had their slots within ``T + (2 * burst - 1) / rate``
    seconds: at most ``rate * T + 2 * burst`` messages, whichever processes sent them (plus
    ``rate * skew`` if the clocks of the machines differ by ``skew``).

    Needs a running event loop (the pool's). While the source fails nothing is sent, and the source is
    asked again every `RETRY_SECONDS`: sending more than the rate is what the user asked us never to do.
    """

    def __init__(self, key: str, per_second: float, source: SlotSource) -> None:
        if per_second <= 0:
            raise ValueError("per_second must be positive")
        self.key = key
        self.per_second = per_second
        self._source = source
        interval = 1.0 / per_second
        self._interval_us = math.ceil(interval * 1e6)  # rounded up: never faster than the rate
        burst = burst_of(per_second)
        self._tolerance = (burst - 1) * interval
        self._expiry = burst * interval
        self._block = max(1, math.ceil(per_second * BURST_SECONDS))
        self._horizon_us = 2 * self._block * self._interval_us
        self._slots: deque[float] = deque()  # monotonic times of reserved slots, in order
        self._last: float | None = None  # the slot last taken, for give_back
        self._refill: asyncio.Task[None] | None = None
        self._not_before = 0.0  # monotonic time before which the source is not asked again

    @property
    def held(self) -> int:
        """Slots reserved and not yet spent or dropped."""
        return len(self._slots)

    def try_take(self) -> bool:
        """Take a slot if one is due now; start reserving more when few are left."""
        now = time.monotonic()
        slots = self._slots
        while slots and slots[0] + self._expiry < now:
            slots.popleft()
        taken = bool(slots) and slots[0] - self._tolerance <= now
        self._last = slots.popleft() if taken else None
        if len(slots) * 2 < self._block and self._refill is None and now >= self._not_before:
            self._refill = asyncio.get_running_loop().create_task(self._reserve())
        return taken

    def give_back(self) -> None:
        """Return the slot just taken (a message that was not sent after all)."""
        if self._last is not None:
            self._slots.appendleft(self._last)
            self._last = None

    async def take(self) -> None:
        """Wait for a slot: until the next reserved one is due, or for a reservation to come back."""
        while not self.try_take():
            now = time.monotonic()
            if self._slots:
                await asyncio.sleep(max(0.001, self._slots[0] - self._tolerance - now))
            elif self._refill is not None:
                await asyncio.wait([self._refill])  # neither cancels the other
            else:
                await asyncio.sleep(max(0.001, self._not_before - now))

    def close(self) -> None:
        """Drop a reservation under way (its thread finishes, its slots are lost)."""
        if self._refill is not None:
            self._refill.cancel()

    async def _reserve(self) -> None:
        try:
            try:
                grant = await asyncio.to_thread(
                    self._source.reserve, self.key, self._block, self._interval_us, self._horizon_us
                )
            except Exception as exc:
                log.warning(
                    "relay %s: cannot reserve send slots (%s); again in %s s", self.key, exc, RETRY_SECONDS
                )
                self._not_before = time.monotonic() + RETRY_SECONDS
                return
            first = grant.first / 1e6 - (time.time() - time.monotonic())
            step = self._interval_us / 1e6
            self._slots.extend(first + i * step for i in range(grant.count))
            if grant.count == 0:
                self._not_before = first - self._horizon_us / 1e6
        finally:
            self._refill = None
