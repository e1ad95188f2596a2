"""One SMTP client session, built for throughput.

Replies are parsed in ``data_received`` (`ReplyProtocol`) and, where the server offers PIPELINING
(RFC 2920), a message's MAIL FROM, RCPT TO and DATA go out in one write. `SmtpConnection.stream` goes
further: each message's content leads the next message's command group, so a message costs a single
round trip. aiosmtplib sends one command per round trip, which on loopback caps a sender at a fifth of
what the relay takes (docs/peers.md §5); that is why the hot path is this small client instead.
"""

from __future__ import annotations

import asyncio
import base64
import re
import ssl
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any, cast

from missiva.delivery.smtp.errors import SessionLost, SmtpConnectError
from missiva.delivery.smtp.relay import Relay, TlsMode
from missiva.delivery.smtp.replies import Reply, ReplyProtocol
from missiva.delivery.smtp.result import SendResult, SendStatus, classify, no_reply
from missiva.delivery.smtp.transport import SendJob

_BARE_LF = re.compile(rb"(?<!\r)\n|\r(?!\n)")
_ADDRESS = re.compile(r"[^\s<>\x00-\x1f\x7f]{1,320}\Z")


def _dot_stuff(data: bytes, crlf: bool = False) -> bytes:
    """DATA payload: CRLF line ends only (no bare LF: SMTP smuggling), leading dots doubled, CRLF end.

    `crlf` says the caller built `data` with CRLF line ends only (`MessageSkeleton` does), which spares
    the three scans that check it: they were most of this function's cost on a 5 KB message.
    """
    if not crlf:
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

    def __init__(self, relay: Relay, protocol: ReplyProtocol, *, timeout: float, data_timeout: float) -> None:
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
                    ReplyProtocol,
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

    def _envelope(self, envelope_from: str, recipient: str) -> tuple[bytes, bytes] | SendResult:
        """The MAIL FROM and RCPT TO commands, or a failed result when an address cannot be sent."""
        sender, rcpt = _check_address(envelope_from), _check_address(recipient)
        if sender is None or rcpt is None or not recipient:
            bad = envelope_from if sender is None else recipient
            return no_reply(SendStatus.FAILED, f"invalid address {bad!r}")
        params = b""
        if not (sender.isascii() and rcpt.isascii()):
            if "SMTPUTF8" not in self.extensions:
                return no_reply(SendStatus.FAILED, f"relay {self.relay.name} does not support SMTPUTF8")
            params = b" SMTPUTF8"
        return b"MAIL FROM:<" + sender + b">" + params + b"\r\n", b"RCPT TO:<" + rcpt + b">\r\n"

    async def _refused(self, mail: Reply, accepted: Reply | None, start: Reply | None) -> SendResult | None:
        """None when the server is ready for the content; otherwise the result, session reset.

        Raises `SessionLost` on 421: the server is closing, the message can go on another session.
        """
        for reply in (mail, accepted, start):
            if reply is not None and reply.code == 421:
                self.abort()
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
        return None

    async def _pipelined_replies(self) -> tuple[Reply, Reply, Reply]:
        try:
            return (
                await self._reply(self.timeout),
                await self._reply(self.timeout),
                await self._reply(self.timeout),
            )
        except SessionLost as exc:
            raise SessionLost(f"relay {self.relay.name}: {exc}") from None

    def _final(self, reply: Reply) -> SendResult:
        self.messages += 1
        self.last_used = time.monotonic()
        if reply.code == 421:
            self.abort()
        return classify(reply.code, reply.text)

    def _uncertain(self, exc: Exception) -> SendResult:
        self.abort()
        return no_reply(SendStatus.UNCERTAIN, f"relay {self.relay.name}: no reply after DATA: {exc}")

    async def send(self, envelope_from: str, recipient: str, data: bytes) -> SendResult:
        """Send one message to one recipient.

        Returns the classified result. Raises `SessionLost` if the session ended before the message was
        committed (safe to send elsewhere); after DATA content was written a lost session is returned as
        ``uncertain`` instead, because the relay may have queued it.
        """
        envelope = self._envelope(envelope_from, recipient)
        if isinstance(envelope, SendResult):
            return envelope
        mail_command, rcpt_command = envelope
        self.last_used = time.monotonic()
        if "PIPELINING" in self.extensions:
            self._write(mail_command + rcpt_command + b"DATA\r\n")
            mail, accepted, start = await self._pipelined_replies()
        else:
            try:
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
        refused = await self._refused(mail, accepted, start)
        if refused is not None:
            return refused
        try:
            self._write(_dot_stuff(data))
            await self._protocol.drain()
            final = await self._reply(self.data_timeout)
        except SessionLost as exc:
            return self._uncertain(exc)
        return self._final(final)

    async def stream(
        self, first: SendJob, take_next: Callable[[], SendJob | None]
    ) -> AsyncIterator[tuple[SendJob, SendResult | None]]:
        """Send ``first`` and then whatever ``take_next`` hands over, until it returns None.

        Each message's content goes out in the same write as the next message's MAIL, RCPT and DATA
        (RFC 2920 allows the content to lead a command group), so a message costs one round trip.
        Yields ``(job, result)``; a None result means the job was not committed before the session
        ended and may be sent on another session. Without PIPELINING this is `send` in a loop.
        """
        job: SendJob | None = first
        if "PIPELINING" not in self.extensions:
            while job is not None:
                try:
                    result = await self.send(job.envelope_from, job.recipient, job.data)
                except SessionLost:
                    yield job, None
                    return
                yield job, result
                job = take_next() if self.usable else None
            return
        pending: SendJob | None = None  # content written with the next commands; final reply due
        prefix = b""
        while True:
            envelope: tuple[bytes, bytes] | SendResult | None = None
            while job is not None:
                envelope = self._envelope(job.envelope_from, job.recipient)
                if not isinstance(envelope, SendResult):
                    break
                yield job, envelope
                job = take_next()
            if job is None:
                if pending is not None:
                    try:
                        self._write(prefix)
                        await self._protocol.drain()
                        final = await self._reply(self.data_timeout)
                    except SessionLost as exc:
                        yield pending, self._uncertain(exc)
                        return
                    yield pending, self._final(final)
                return
            assert isinstance(envelope, tuple)
            self.last_used = time.monotonic()
            try:
                self._write(prefix + envelope[0] + envelope[1] + b"DATA\r\n")
                await self._protocol.drain()
            except SessionLost:
                if pending is not None:
                    yield pending, None  # nothing was written: its content never left
                yield job, None
                return
            if pending is not None:
                try:
                    final = await self._reply(self.data_timeout)
                except SessionLost as exc:
                    yield pending, self._uncertain(exc)
                    yield job, None
                    return
                yield pending, self._final(final)
                pending = None
            try:
                refused = await self._refused(*await self._pipelined_replies())
            except SessionLost:
                yield job, None
                return
            if refused is not None:
                yield job, refused
                prefix = b""
                job = take_next() if self.usable else None
                continue
            prefix = _dot_stuff(job.data, job.crlf)
            pending, job = job, take_next()

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
