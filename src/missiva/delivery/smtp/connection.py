"""One SMTP client session, built for throughput: replies are parsed in ``data_received`` and each
message's MAIL FROM, RCPT TO and DATA go out in a single write when the server offers PIPELINING
(RFC 2920), so a message costs two round trips however slow the relay's link is.

aiosmtplib sends one command per round trip; on loopback that alone caps a sender at a fifth of what
the relay takes (docs/peers.md §5), so the hot path is this small protocol class instead.
"""

from __future__ import annotations

import asyncio
import base64
import re
import ssl
import time
from collections import deque
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, cast

from missiva.delivery.smtp.relay import Relay, TlsMode
from missiva.delivery.smtp.result import SendResult, SendStatus, classify, no_reply

_MAX_LINE = 8192
_WATCH_INTERVAL = 0.25
_BARE_LF = re.compile(rb"(?<!\r)\n|\r(?!\n)")
_ADDRESS = re.compile(r"[^\s<>\x00-\x1f\x7f]{1,320}\Z")


class SmtpError(Exception):
    """Base class of SMTP client errors."""


class SmtpConnectError(SmtpError):
    """No usable session with a relay: refused, timed out, TLS or login failed, or greeting refused."""


class SessionLost(SmtpError):
    """The session ended before the message was committed: nothing was delivered, it can go elsewhere."""


class ReplyTimeout(SessionLost):
    """The relay did not answer in time; the session is dropped."""


@dataclass(frozen=True, slots=True)
class Reply:
    """A complete (possibly multi-line) SMTP reply."""

    code: int
    lines: tuple[str, ...]

    @property
    def text(self) -> str:
        return " ".join(self.lines)


class _ReplyProtocol(asyncio.Protocol):
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


def _dot_stuff(data: bytes) -> bytes:
    """DATA payload: CRLF line ends only (no bare LF: SMTP smuggling), leading dots doubled, CRLF end."""
    line_ends = data.count(b"\r\n")
    if data.count(b"\n") != line_ends or data.count(b"\r") != line_ends:
        data = _BARE_LF.sub(b"\r\n", data)
    if data.startswith(b"."):
        data = b"." + data
    data = data.replace(b"\r\n.", b"\r\n..")
    if not data.endswith(b"\r\n"):
        data += b"\r\n"
    return data + b".\r\n"


def _check_address(address: str) -> bytes | None:
    if address and not _ADDRESS.match(address):
        return None
    return address.encode("utf-8")


class SmtpConnection:
    """An open, greeted, optionally encrypted and authenticated session with one relay."""

    def __init__(
        self, relay: Relay, protocol: _ReplyProtocol, *, timeout: float, data_timeout: float
    ) -> None:
        self.relay = relay
        self._protocol = protocol
        self.timeout = timeout
        self.data_timeout = data_timeout
        self.extensions: dict[str, str] = {}
        self.last_used = time.monotonic()
        self.messages = 0

    @classmethod
    async def open(
        cls,
        relay: Relay,
        *,
        helo_name: str,
        ssl_context: ssl.SSLContext | None = None,
        connect_timeout: float = 10.0,
        timeout: float = 60.0,
        data_timeout: float = 600.0,
    ) -> SmtpConnection:
        """Connect, read the greeting, EHLO, STARTTLS and AUTH as the relay requires.

        Raises `SmtpConnectError` for anything that makes the relay unusable right now.
        """
        loop = asyncio.get_running_loop()
        context = ssl_context or ssl.create_default_context()
        implicit = relay.tls is TlsMode.IMPLICIT
        connection: SmtpConnection | None = None
        try:
            async with asyncio.timeout(connect_timeout):
                _, protocol = await loop.create_connection(
                    _ReplyProtocol,
                    relay.host,
                    relay.port,
                    ssl=context if implicit else None,
                    server_hostname=relay.host if implicit else None,
                )
                connection = cls(relay, protocol, timeout=timeout, data_timeout=data_timeout)
                await connection._handshake(helo_name, context)
        except BaseException as exc:
            if connection is not None:
                connection.abort()
            if isinstance(exc, (OSError, SessionLost, TimeoutError)):
                raise SmtpConnectError(f"relay {relay.name}: {type(exc).__name__}: {exc}") from exc
            raise
        return connection

    async def _handshake(self, helo_name: str, context: ssl.SSLContext) -> None:
        greeting = await self._protocol.reply(self.timeout)
        if greeting.code != 220:
            self.abort()
            raise SmtpConnectError(f"relay {self.relay.name} greeting: {greeting.code} {greeting.text}")
        await self._ehlo(helo_name)
        if self.relay.tls is TlsMode.STARTTLS:
            if "STARTTLS" not in self.extensions:
                self.abort()
                raise SmtpConnectError(f"relay {self.relay.name} does not offer STARTTLS")
            await self._expect(b"STARTTLS\r\n", 220, "STARTTLS")
            loop = asyncio.get_running_loop()
            assert self._protocol.transport is not None
            transport = await loop.start_tls(
                self._protocol.transport, self._protocol, context, server_hostname=self.relay.host
            )
            self._protocol.transport = cast(asyncio.Transport, transport)
            await self._ehlo(helo_name)
        if self.relay.username is not None:
            await self._login(self.relay.username, self.relay.password or "")

    async def _ehlo(self, helo_name: str) -> None:
        self._write(b"EHLO " + helo_name.encode("ascii") + b"\r\n")
        reply = await self._protocol.reply(self.timeout)
        if reply.code != 250:
            await self._expect(b"HELO " + helo_name.encode("ascii") + b"\r\n", 250, "HELO")
            self.extensions = {}
            return
        extensions = {}
        for line in reply.lines[1:]:
            keyword, _, params = line.partition(" ")
            extensions[keyword.upper()] = params
        self.extensions = extensions

    async def _login(self, username: str, password: str) -> None:
        methods = self.extensions.get("AUTH", "").upper().split()
        if "PLAIN" in methods:
            token = base64.b64encode(f"\0{username}\0{password}".encode())
            await self._expect(b"AUTH PLAIN " + token + b"\r\n", 235, "AUTH PLAIN")
        elif "LOGIN" in methods:
            await self._expect(b"AUTH LOGIN\r\n", 334, "AUTH LOGIN")
            await self._expect(base64.b64encode(username.encode()) + b"\r\n", 334, "AUTH LOGIN")
            await self._expect(base64.b64encode(password.encode()) + b"\r\n", 235, "AUTH LOGIN")
        else:
            self.abort()
            raise SmtpConnectError(f"relay {self.relay.name} offers no AUTH PLAIN or LOGIN")

    async def _expect(self, command: bytes, code: int, what: str) -> Reply:
        self._write(command)
        reply = await self._protocol.reply(self.timeout)
        if reply.code != code:
            self.abort()
            raise SmtpConnectError(f"relay {self.relay.name} {what}: {reply.code} {reply.text}")
        return reply

    def _write(self, data: bytes) -> None:
        transport = self._protocol.transport
        if transport is None or transport.is_closing() or self._protocol.lost is not None:
            raise self._protocol.lost or SessionLost("connection is closed")
        transport.write(data)

    @property
    def usable(self) -> bool:
        """Still connected, as far as we know without asking the server."""
        transport = self._protocol.transport
        return self._protocol.lost is None and transport is not None and not transport.is_closing()

    def _reply(self, timeout: float) -> Coroutine[Any, Any, Reply]:
        return self._protocol.reply(timeout)

    async def send(self, envelope_from: str, recipient: str, data: bytes) -> SendResult:
        """Send one message to one recipient.

        Returns the classified result. Raises `SessionLost` if the session ended before the message was
        committed (safe to send elsewhere); after DATA content was written a lost session is returned as
        ``uncertain`` instead, because the relay may have queued it.
        """
        sender, rcpt = _check_address(envelope_from), _check_address(recipient)
        if sender is None or rcpt is None or not recipient:
            bad = envelope_from if sender is None else recipient
            return no_reply(SendStatus.FAILED, f"invalid address {bad!r}")
        params = b""
        if not (sender.isascii() and rcpt.isascii()):
            if "SMTPUTF8" not in self.extensions:
                return no_reply(SendStatus.FAILED, f"relay {self.relay.name} does not support SMTPUTF8")
            params = b" SMTPUTF8"
        self.last_used = time.monotonic()
        mail_command = b"MAIL FROM:<" + sender + b">" + params + b"\r\n"
        rcpt_command = b"RCPT TO:<" + rcpt + b">\r\n"
        try:
            if "PIPELINING" in self.extensions:
                self._write(mail_command + rcpt_command + b"DATA\r\n")
                mail = await self._reply(self.timeout)
                accepted = await self._reply(self.timeout)
                start = await self._reply(self.timeout)
            else:
                self._write(mail_command)
                mail = await self._reply(self.timeout)
                accepted = start = None
                if mail.code == 250:
                    self._write(rcpt_command)
                    accepted = await self._reply(self.timeout)
                    if accepted.code in (250, 251):
                        self._write(b"DATA\r\n")
                        start = await self._reply(self.timeout)
        except SessionLost as exc:
            raise SessionLost(f"relay {self.relay.name}: {exc}") from None
        for reply in (mail, accepted, start):
            if reply is not None and reply.code == 421:
                self.abort()  # the server is closing the session: the message can go on another one
                raise SessionLost(f"relay {self.relay.name}: {reply.code} {reply.text}")
        if mail.code != 250:
            await self._recover(start)
            return classify(mail.code, mail.text, recipient_stage=False)
        assert accepted is not None
        if accepted.code not in (250, 251):
            await self._recover(start)
            return classify(accepted.code, accepted.text)
        assert start is not None
        if start.code != 354:
            await self._recover(None)
            return classify(start.code, start.text, recipient_stage=False)
        payload = _dot_stuff(data)
        try:
            self._write(payload)
            await self._protocol.drain()
            final = await self._reply(self.data_timeout)
        except SessionLost as exc:
            self.abort()
            return no_reply(SendStatus.UNCERTAIN, f"relay {self.relay.name}: no reply after DATA: {exc}")
        self.messages += 1
        self.last_used = time.monotonic()
        if final.code == 421:
            self.abort()
        return classify(final.code, final.text)

    async def _recover(self, start: Reply | None) -> None:
        """Bring the session back to a clean state after a refused transaction."""
        try:
            if start is not None and start.code == 354:
                # The server accepted DATA although the transaction failed (allowed with
                # pipelining): send an empty message to close it, then reset.
                self._write(b".\r\n")
                await self._reply(self.timeout)
            self._write(b"RSET\r\n")
            reply = await self._reply(self.timeout)
            if reply.code != 250:
                self.abort()
        except SessionLost:
            self.abort()

    async def quit(self) -> None:
        """Say goodbye politely, without waiting long for a relay that does not answer."""
        try:
            self._write(b"QUIT\r\n")
            await self._reply(min(self.timeout, 5.0))
        except SessionLost:
            pass
        finally:
            self.close()

    def close(self) -> None:
        """Close after flushing what was written."""
        if self._protocol.transport is not None:
            self._protocol.transport.close()

    def abort(self) -> None:
        """Drop the connection at once (its state is unknown or broken)."""
        if self._protocol.lost is None:
            self._protocol.lost = SessionLost("connection aborted by the client")
        if self._protocol.transport is not None:
            self._protocol.transport.abort()
