"""A pool of persistent SMTP sessions over one or more weighted relays, with failover.

New sessions go to relays in proportion to their weights, up to each relay's ``max_connections``.
A relay that refuses connections (or TLS, or our login) is set aside for a while, doubling up to
``max_down`` seconds, and its share goes to the others. A session that dies before a message is
committed is replaced and the message sent again on another session; after the message content went
out, a lost session makes the result ``uncertain`` and nothing is resent.

A relay's ``rate`` is kept by this process alone, or, given a `SlotSource` (the database, see
`missiva.delivery.relay_rates`), shared with every process that uses the same source.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import ssl
import time
from collections import deque
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Sequence
from types import TracebackType

from missiva.delivery.smtp.connection import SmtpConnection
from missiva.delivery.smtp.errors import SessionLost, SmtpConnectError, SmtpError
from missiva.delivery.smtp.rate import Limiter, RateLimiter, SharedRateLimiter, SlotSource, relay_key
from missiva.delivery.smtp.relay import Relay
from missiva.delivery.smtp.result import SendResult, SendStatus, no_reply
from missiva.delivery.smtp.transport import SendJob, iterate_jobs


class NoRelayAvailable(SmtpError):
    """Every relay is refusing connections at the moment."""


class _RelayState:
    __slots__ = ("down_until", "failures", "idle", "last_error", "limiter", "open", "relay")

    def __init__(self, relay: Relay, slot_source: SlotSource | None) -> None:
        self.relay = relay
        self.limiter: Limiter | None = None
        if relay.rate and slot_source is not None:
            self.limiter = SharedRateLimiter(relay_key(relay), relay.rate, slot_source)
        elif relay.rate:
            self.limiter = RateLimiter(relay.rate)
        self.open = 0
        self.idle: list[SmtpConnection] = []
        self.down_until = 0.0
        self.failures = 0
        self.last_error = ""


class SmtpPool:
    """Persistent SMTP sessions shared by concurrent senders; see the module docstring."""

    def __init__(
        self,
        relays: Sequence[Relay],
        *,
        helo_name: str | None = None,
        ssl_context: ssl.SSLContext | None = None,
        window: int | None = None,
        connect_timeout: float = 10.0,
        timeout: float = 60.0,
        data_timeout: float = 600.0,
        idle_timeout: float = 30.0,
        max_attempts: int = 3,
        min_down: float = 5.0,
        max_down: float = 300.0,
        slot_source: SlotSource | None = None,
    ) -> None:
        if not relays:
            raise ValueError("SmtpPool needs at least one relay (use MaildirOutbox when there is none)")
        self._states = [_RelayState(relay, slot_source) for relay in relays]
        self._state_of = {id(state.relay): state for state in self._states}
        self._capacity = sum(relay.max_connections for relay in relays)
        # Each session holds up to two jobs (one awaiting its final reply, one being sent): at twice the
        # sessions the queue was often empty when a session asked for its next job, which ended its
        # pipeline (half the messages of a mailing paid an extra round trip).
        self._window = window or 4 * self._capacity
        if self._window < 1:
            raise ValueError("window must be at least 1")
        self._helo = helo_name or socket.gethostname() or "localhost"
        self._ssl_context = ssl_context
        self._connect_timeout = connect_timeout
        self._timeout = timeout
        self._data_timeout = data_timeout
        self._idle_timeout = idle_timeout
        self._max_attempts = max_attempts
        self._min_down = min_down
        self._max_down = max_down
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._closed = False

    @property
    def window(self) -> int:
        """Most jobs `send_stream` holds at once (queued for a session, being sent, or answered)."""
        return self._window

    async def __aenter__(self) -> SmtpPool:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def send(self, envelope_from: str, recipient: str, data: bytes) -> SendResult:
        """Send one message on a pooled session; delivery problems come back as the result."""
        last = "no attempt made"
        for _ in range(self._max_attempts):
            try:
                connection = await self._acquire()
            except NoRelayAvailable as exc:
                return no_reply(SendStatus.SOFT_FAIL, str(exc))
            reusable = False
            try:
                await self._slot(connection)
                result = await connection.send(envelope_from, recipient, data)
                reusable = connection.usable
                return result
            except SessionLost as exc:
                last = str(exc)
            finally:
                self._release(connection, reusable)
        return no_reply(SendStatus.SOFT_FAIL, f"gave up after {self._max_attempts} lost sessions: {last}")

    async def send_stream(
        self, jobs: AsyncIterable[SendJob] | Iterable[SendJob]
    ) -> AsyncIterator[tuple[SendJob, SendResult]]:
        """Send jobs concurrently over the pool, yielding ``(job, result)`` as each completes.

        Jobs are pulled from ``jobs`` only while fewer than `window` are in flight or unread, so a
        slow relay (or a slow consumer) slows the producer instead of filling memory. If ``jobs``
        raises, the jobs already taken are finished and yielded first, then the error propagates.
        """
        window = self._window
        workers = min(window, self._capacity)
        room = asyncio.Semaphore(window)
        inbox: asyncio.Queue[SendJob | None] = asyncio.Queue()
        outbox: asyncio.Queue[tuple[SendJob, SendResult] | None] = asyncio.Queue()

        async def feed() -> None:
            try:
                async for job in iterate_jobs(jobs):
                    await room.acquire()
                    inbox.put_nowait(job)
            finally:
                for _ in range(workers):
                    inbox.put_nowait(None)

        def take_next(limiter: Limiter | None) -> SendJob | None:
            # Only what is already queued: a session never waits for the producer while it holds
            # a message whose final reply is due, nor for its relay's rate limit (the session ends
            # its pipeline instead, and the job waits for a slot in `_stream_session`).
            if inbox.empty() or (limiter is not None and not limiter.try_take()):
                return None
            job = inbox.get_nowait()
            if job is None:
                inbox.put_nowait(None)  # the end marker belongs to some worker's blocking get
                if limiter is not None:
                    limiter.give_back()
            return job

        async def work() -> None:
            try:
                while (job := await inbox.get()) is not None:
                    await self._stream_session(job, take_next, outbox.put_nowait)
            finally:
                outbox.put_nowait(None)

        tasks = [asyncio.create_task(feed())] + [asyncio.create_task(work()) for _ in range(workers)]
        try:
            finished = 0
            while finished < workers:
                item = await outbox.get()
                if item is None:
                    finished += 1
                    continue
                room.release()
                yield item
            for task in tasks:
                if task.exception() is not None:
                    raise task.exception()  # type: ignore[misc]
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _stream_session(
        self,
        first: SendJob,
        take_next: Callable[[Limiter | None], SendJob | None],
        deliver: Callable[[tuple[SendJob, SendResult]], None],
    ) -> None:
        """Run jobs on one pooled session while more are queued; resend the uncommitted ones."""
        try:
            connection = await self._acquire()
        except NoRelayAvailable as exc:
            deliver((first, no_reply(SendStatus.SOFT_FAIL, str(exc))))
            return
        retry: list[SendJob] = []
        reusable = False
        limiter = self._state_of[id(connection.relay)].limiter
        try:
            await self._slot(connection)
            async for job, result in connection.stream(first, lambda: take_next(limiter)):
                if result is None:
                    retry.append(job)
                else:
                    deliver((job, result))
            reusable = connection.usable
        finally:
            self._release(connection, reusable)
        for job in retry:
            deliver((job, await self.send(job.envelope_from, job.recipient, job.data)))

    async def _slot(self, connection: SmtpConnection) -> None:
        """Wait until the connection's relay may take one more message (its ``rate``)."""
        limiter = self._state_of[id(connection.relay)].limiter
        if limiter is not None:
            await limiter.take()

    async def close(self) -> None:
        """Close every idle session (QUIT); sessions in use are closed when released."""
        self._closed = True
        for state in self._states:
            if state.limiter is not None:
                state.limiter.close()
        idle = [connection for state in self._states for connection in state.idle]
        for state in self._states:
            state.open -= len(state.idle)
            state.idle.clear()
        await asyncio.gather(*(connection.quit() for connection in idle), return_exceptions=True)
        self._wake()

    async def _acquire(self) -> SmtpConnection:
        while True:
            if self._closed:
                raise NoRelayAvailable("the pool is closed")
            connection = self._pop_idle()
            if connection is not None:
                return connection
            now = time.monotonic()
            state = self._choose_relay(now)
            if state is not None:
                return await self._connect(state)
            if all(state.down_until > now for state in self._states):
                reasons = "; ".join(state.last_error for state in self._states)
                raise NoRelayAvailable(f"no relay accepts connections: {reasons}")
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            finally:
                if not waiter.done():
                    with contextlib.suppress(ValueError):
                        self._waiters.remove(waiter)

    def _pop_idle(self) -> SmtpConnection | None:
        now = time.monotonic()
        for state in self._states:
            idle = state.idle
            while idle:
                connection = idle.pop()
                if connection.usable and now - connection.last_used < self._idle_timeout:
                    return connection
                state.open -= 1
                connection.abort()
        return None

    def _choose_relay(self, now: float) -> _RelayState | None:
        candidates = [
            state
            for state in self._states
            if state.open < state.relay.max_connections and state.down_until <= now
        ]
        if not candidates:
            return None
        if len(candidates) == 1:
            return candidates[0]
        return random.choices(candidates, weights=[state.relay.weight for state in candidates])[0]

    async def _connect(self, state: _RelayState) -> SmtpConnection:
        state.open += 1
        try:
            connection = await SmtpConnection.open(
                state.relay,
                helo_name=self._helo,
                ssl_context=self._ssl_context,
                connect_timeout=self._connect_timeout,
                timeout=self._timeout,
                data_timeout=self._data_timeout,
            )
        except SmtpConnectError as exc:
            state.open -= 1
            state.failures += 1
            state.down_until = time.monotonic() + min(
                self._max_down, self._min_down * 2 ** (state.failures - 1)
            )
            state.last_error = str(exc)
            self._wake()
            return await self._acquire()
        except BaseException:
            state.open -= 1
            self._wake()
            raise
        state.failures = 0
        return connection

    def _release(self, connection: SmtpConnection, reusable: bool) -> None:
        state = self._state_of[id(connection.relay)]
        if reusable and not self._closed and connection.usable:
            state.idle.append(connection)
        else:
            state.open -= 1
            connection.abort()
        self._wake()

    def _wake(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
