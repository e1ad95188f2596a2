"""SMTP replies as they come off the wire: an asyncio protocol that splits the byte stream into
(possibly multi-line) replies and hands them, in order, to the coroutine waiting for them."""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass
from typing import cast

from missiva.delivery.smtp.errors import ReplyTimeout, SessionLost

_MAX_LINE = 8192
_WATCH_INTERVAL = 0.25


@dataclass(frozen=True, slots=True)
class Reply:
    """A complete (possibly multi-line) SMTP reply."""

    code: int
    lines: tuple[str, ...]

    @property
    def text(self) -> str:
        return " ".join(self.lines)


class ReplyProtocol(asyncio.Protocol):
    """Splits the byte stream into replies and hands them to whoever waits, in order."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self._buffer = b""
        self._lines: list[str] = []
        self._replies: deque[Reply] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self.lost: Exception | None = None
        self._drain: asyncio.Future[None] | None = None
        self._paused = False
        self._deadline = 0.0
        self._loop = asyncio.get_running_loop()
        self._watchdog: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not subclass asyncio.Transport, hence a cast and not a check.
        self.transport = cast(asyncio.Transport, transport)
        self._watchdog = self._loop.call_later(_WATCH_INTERVAL, self._watch)

    def _watch(self) -> None:
        # One timer per session instead of one per reply: a per-reply asyncio.timeout() costs a
        # timer-heap push and pop per command, a sixth of the CPU of a pipelined send.
        if self.lost is not None:
            return
        if self._waiter is not None and self._loop.time() > self._deadline:
            self._fail(ReplyTimeout("no reply in time"))
            return
        self._watchdog = self._loop.call_later(_WATCH_INTERVAL, self._watch)

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer + data if self._buffer else data
        start = 0
        while True:
            end = buffer.find(b"\n", start)
            if end < 0:
                break
            line = buffer[start:end]
            start = end + 1
            if len(line) < 3 or not line[:3].isdigit():
                self._fail(SessionLost(f"malformed reply line {line[:80]!r}"))
                return
            self._lines.append(line[4:].rstrip(b"\r").decode("utf-8", "replace"))
            if line[3:4] != b"-":
                self._replies.append(Reply(int(line[:3]), tuple(self._lines)))
                self._lines = []
        self._buffer = buffer[start:]
        if len(self._buffer) > _MAX_LINE:
            self._fail(SessionLost("reply line too long"))
            return
        if self._replies:
            self._wake()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
        if self.lost is None:
            self.lost = SessionLost(f"connection lost: {exc}" if exc else "connection closed by the server")
        self._wake()
        if self._drain is not None and not self._drain.done():
            self._drain.set_result(None)

    def pause_writing(self) -> None:
        self._paused = True

    def resume_writing(self) -> None:
        self._paused = False
        if self._drain is not None and not self._drain.done():
            self._drain.set_result(None)

    def _fail(self, exc: Exception) -> None:
        self.lost = exc
        if self.transport is not None:
            self.transport.abort()
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def reply(self, timeout: float) -> Reply:
        """The next reply; raises `SessionLost` when the connection is gone (or silent) first."""
        while not self._replies:
            if self.lost is not None:
                raise self.lost
            self._deadline = self._loop.time() + timeout
            self._waiter = self._loop.create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return self._replies.popleft()

    async def drain(self) -> None:
        """Wait while the transport's write buffer is above its high-water mark."""
        if self._paused and self.lost is None:
            self._drain = self._loop.create_future()
            await self._drain
