"""Asyncio SMPP 3.4 ESME: one transceiver bind, windowed submits, receipts and MO, reconnect.

Why not a library: the send ledger needs to know, for every submit, whether the PDU was handed to the
socket (then a lost connection makes the outcome *uncertain*) or not (then it is safe to retry), and
deliver_sm must be acknowledged only after the receipt has been handled. The asyncio SMPP libraries on
PyPI either queue and retry on their own or acknowledge deliver_sm before the application sees it, so
this client is a small state machine over :mod:`.pdu`.

Windowing: at most ``window`` request PDUs are outstanding (one per part); each holds a slot until its
response, a timeout or the end of the connection. Reconnection runs in the background with exponential
backoff; submits made meanwhile wait up to ``connect_wait`` for a new bind before giving up as
:class:`NotSent`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from missiva.delivery.sms.addresses import recipient, sender
from missiva.delivery.sms.encoding import DATA_CODING, encode_parts, with_udh
from missiva.delivery.sms.events import InboundSms, Receipt
from missiva.delivery.sms.smpp.pdu import (
    ESM_UDHI,
    HEADER,
    HEADER_SIZE,
    REGISTERED_DELIVERY_FINAL,
    Bind,
    CommandId,
    Pdu,
    PduError,
    PduStream,
    ShortMessage,
    Status,
    decode_message_id,
    read_pdu,
)
from missiva.delivery.sms.smpp.receipts import is_receipt, parse_inbound, parse_receipt
from missiva.delivery.sms.transport import NotSent, Rejected, SubmitResult, Uncertain

log = logging.getLogger(__name__)

EventHandler = Callable[[Receipt | InboundSms], Awaitable[None]]

#: Statuses that mean "not accepted, try later": the SMSC refused for load, not for content.
RETRYABLE_STATUSES = frozenset({Status.RTHROTTLED, Status.RMSGQFUL})


@dataclass(frozen=True, slots=True)
class SmppSettings:
    """Connection and flow settings of one SMPP account (all durations in seconds)."""

    host: str
    port: int
    system_id: str
    password: str
    system_type: str = ""
    name: str = "smpp"
    window: int = 10
    enquire_link_interval: float = 30.0
    response_timeout: float = 10.0
    connect_timeout: float = 5.0
    connect_wait: float = 10.0
    reconnect_min: float = 0.1
    reconnect_max: float = 10.0
    registered_delivery: bool = True
    throttle_retries: int = 3
    throttle_backoff: float = 0.2
    inbound_concurrency: int = 32

    def __post_init__(self) -> None:
        if self.window < 1:
            raise ValueError(f"window must be at least 1, got {self.window}")
        if self.response_timeout <= 0 or self.enquire_link_interval <= 0:
            raise ValueError("response_timeout and enquire_link_interval must be positive")
        if not 0 < self.reconnect_min <= self.reconnect_max:
            raise ValueError("need 0 < reconnect_min <= reconnect_max")


class SmppConnectError(Exception):
    """Could not connect or bind; ``command_status`` is set when the SMSC refused the bind."""

    def __init__(self, message: str, command_status: int | None = None) -> None:
        super().__init__(message)
        self.command_status = command_status


class _NotWritten(Exception):
    """Internal: the PDU never reached the socket."""


class _NoAnswer(Exception):
    """Internal: the PDU was written, but no response will come (lost connection, timeout)."""


def _consume_outcome(future: asyncio.Future[Pdu]) -> None:
    """Mark a fire-and-forget request's failure as seen (an enquire_link nobody awaits)."""
    if not future.cancelled():
        future.exception()


class _Session:
    """One bound TCP connection: pending requests, the reader loop and the keepalive timer."""

    def __init__(
        self, client: SmppClient, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.client = client
        self.reader = reader
        self.writer = writer
        self.loop = asyncio.get_running_loop()
        self.pending: dict[int, tuple[asyncio.Future[Pdu], float]] = {}
        self.outbox: list[bytes] = []
        self.unflushed: list[int] = []
        self.closed = False
        self.done = asyncio.Event()
        self.last_seen = self.loop.time()
        self.handlers: set[asyncio.Task[None]] = set()
        self.handler_slots = asyncio.Semaphore(client.settings.inbound_concurrency)
        self.tasks = [
            asyncio.create_task(self._read_loop(), name=f"{client.name}-reader"),
            asyncio.create_task(self._keepalive(), name=f"{client.name}-keepalive"),
        ]

    def request(self, command_id: int, body: bytes) -> asyncio.Future[Pdu]:
        """Queue a request for this loop iteration's write and return the future of its response.

        The future fails with :class:`_NotWritten` if the connection ends before the PDU reached the
        socket, with :class:`_NoAnswer` if it ends (or response_timeout passes) after.
        """
        if self.closed or self.writer.is_closing():
            self.abort("socket closing")
            raise _NotWritten("connection closing")
        sequence = self.client._next_sequence()
        future: asyncio.Future[Pdu] = self.loop.create_future()
        self.pending[sequence] = (future, self.loop.time() + self.client.settings.response_timeout)
        self._queue(HEADER.pack(HEADER_SIZE + len(body), command_id, 0, sequence) + body, sequence)
        return future

    def reply(self, command_id: int, status: int, sequence: int, body: bytes = b"") -> None:
        """Answer a request from the SMSC, if the connection is still there."""
        if not self.closed and not self.writer.is_closing():
            self._queue(Pdu(command_id, status, sequence, body).encode())

    def _queue(self, data: bytes, sequence: int | None = None) -> None:
        # PDUs produced in one loop iteration leave in one send(): a syscall per PDU would cost
        # more than everything else the client does.
        if not self.outbox:
            self.loop.call_soon(self._flush)
        self.outbox.append(data)
        if sequence is not None:
            self.unflushed.append(sequence)

    def _flush(self) -> None:
        if self.closed or not self.outbox:
            return
        data = b"".join(self.outbox)
        self.outbox.clear()
        self.unflushed.clear()
        self.writer.write(data)

    def abort(self, reason: str) -> None:
        """End the connection; every unanswered request becomes :class:`_NoAnswer`."""
        if self.closed:
            return
        self.closed = True
        log.info("smpp %s: connection ended (%s)", self.client.name, reason)
        self.client._session_lost(self, reason)
        pending, self.pending = self.pending, {}
        for sequence in self.unflushed:
            future, _ = pending.pop(sequence, (None, 0.0))
            if future is not None and not future.done():
                future.set_exception(_NotWritten(f"connection lost before the PDU left: {reason}"))
        self.outbox.clear()
        self.unflushed.clear()
        for future, _ in pending.values():
            if not future.done():
                future.set_exception(_NoAnswer(f"connection lost: {reason}"))
        for task in self.tasks:
            if task is not asyncio.current_task():
                task.cancel()
        self.writer.close()
        self.done.set()

    async def _read_loop(self) -> None:
        reason = "closed by peer"
        stream = PduStream()
        try:
            while data := await self.reader.read(65536):
                self.last_seen = self.loop.time()
                for pdu in stream.feed(data):
                    self._dispatch(pdu)
                    if pdu.command_id == CommandId.UNBIND:
                        reason = "unbind from SMSC"
                        return
        except ConnectionError as exc:
            reason = f"closed by peer ({type(exc).__name__})"
        except PduError as exc:
            reason = f"malformed PDU: {exc}"
        finally:
            self.abort(reason)

    def _dispatch(self, pdu: Pdu) -> None:
        if pdu.is_response:
            entry = self.pending.pop(pdu.sequence_number, None)
            if entry is not None and not entry[0].done():
                entry[0].set_result(pdu)
            elif pdu.command_id == CommandId.GENERIC_NACK:
                log.warning(
                    "smpp %s: generic_nack 0x%x for unknown sequence", self.client.name, pdu.command_status
                )
            return
        if pdu.command_id == CommandId.DELIVER_SM:
            self._start_handler(pdu)
        elif pdu.command_id == CommandId.ENQUIRE_LINK:
            self.reply(CommandId.ENQUIRE_LINK_RESP, Status.ROK, pdu.sequence_number)
        elif pdu.command_id == CommandId.UNBIND:
            self.reply(CommandId.UNBIND_RESP, Status.ROK, pdu.sequence_number)
        else:
            self.reply(CommandId.GENERIC_NACK, Status.RINVCMDID, pdu.sequence_number)

    def _start_handler(self, pdu: Pdu) -> None:
        task = asyncio.create_task(self._handle_deliver(pdu))
        self.handlers.add(task)
        task.add_done_callback(self.handlers.discard)

    async def _handle_deliver(self, pdu: Pdu) -> None:
        """Acknowledge a deliver_sm only once its receipt or message has been handled."""
        async with self.handler_slots:
            status = Status.ROK
            try:
                sm = ShortMessage.decode(pdu.body, "deliver_sm")
                name = self.client.name
                event = parse_receipt(sm, name) if is_receipt(sm) else parse_inbound(sm, name)
                if self.client.on_event is not None:
                    await self.client.on_event(event)
            except PduError as exc:
                log.warning("smpp %s: undecodable deliver_sm: %s", self.client.name, exc)
                status = Status.RSYSERR
            except Exception:
                # Temporary application error: the SMSC keeps the receipt and redelivers it later.
                log.exception("smpp %s: deliver_sm handler failed", self.client.name)
                status = Status.RX_T_APPN
            self.reply(CommandId.DELIVER_SM_RESP, status, pdu.sequence_number, b"\x00")

    async def _keepalive(self) -> None:
        """Expire unanswered requests and probe an idle link with enquire_link."""
        settings = self.client.settings
        tick = min(1.0, settings.response_timeout / 4, settings.enquire_link_interval / 2)
        probe: asyncio.Future[Pdu] | None = None
        while not self.closed:
            await asyncio.sleep(tick)
            now = self.loop.time()
            overdue = [seq for seq, (_, deadline) in self.pending.items() if deadline <= now]
            for seq in overdue:
                future, _ = self.pending.pop(seq)
                if future is probe:
                    self.abort("no enquire_link_resp")
                    return
                if not future.done():
                    future.set_exception(_NoAnswer("no response within response_timeout"))
            if probe is not None and probe.done():
                probe = None
            if probe is None and now - self.last_seen >= settings.enquire_link_interval:
                try:
                    probe = self.request(CommandId.ENQUIRE_LINK, b"")
                except _NotWritten:
                    return
                probe.add_done_callback(_consume_outcome)


class SmppClient:
    """An SMPP account seen as an :class:`~missiva.delivery.sms.transport.SmsTransport`.

    ``on_event`` receives every :class:`Receipt` and :class:`InboundSms`; the deliver_sm is
    acknowledged when it returns, or refused as a temporary error when it raises (so the SMSC
    redelivers it).
    """

    def __init__(self, settings: SmppSettings, on_event: EventHandler | None = None) -> None:
        self.settings = settings
        self.on_event = on_event
        self.reconnects = 0
        self._window = asyncio.Semaphore(settings.window)
        self._session: _Session | None = None
        self._bound = asyncio.Event()
        self._sequence = 0
        self._concat_ref = random.randrange(256)
        self._closing = False
        self._supervisor: asyncio.Task[None] | None = None
        self._last_error = "not connected"

    @property
    def name(self) -> str:
        """Transport name recorded with results and events."""
        return self.settings.name

    @property
    def bound(self) -> bool:
        """Whether a bound connection is up right now."""
        return self._session is not None and not self._session.closed

    async def __aenter__(self) -> SmppClient:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def start(self) -> None:
        """Connect and bind; raises :class:`SmppConnectError` if the first attempt fails."""
        session = await self._open()
        self._install(session)
        self._supervisor = asyncio.create_task(self._supervise(), name=f"{self.name}-supervisor")

    async def close(self) -> None:
        """Let outstanding requests finish (up to response_timeout), unbind, stop reconnecting."""
        self._closing = True
        session = self._session
        if session is not None and not session.closed:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.settings.response_timeout):
                    while session.pending and not session.closed:
                        await asyncio.sleep(0.01)
                    if not session.closed:
                        with contextlib.suppress(_NotWritten, _NoAnswer):
                            await session.request(CommandId.UNBIND, b"")
            session.abort("client closed")
        if self._supervisor is not None:
            self._supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._supervisor

    async def submit(self, msg_ref: str, dest: str, source: str, text: str) -> SubmitResult:
        """Submit one SMS (all its parts) and return the SMSC's message id of each part.

        Raises :class:`NotSent` if no part was written, :class:`Uncertain` if a part was written and
        its answer lost, :class:`Rejected` if the SMSC refused a part. Invalid addresses or text raise
        ``ValueError`` subclasses before anything is sent.
        """
        to, origin = recipient(dest), sender(source)
        encoding, payloads = encode_parts(text)
        esm_class = 0
        if len(payloads) > 1:
            self._concat_ref = (self._concat_ref + 1) & 0xFF
            payloads = with_udh(payloads, self._concat_ref)
            esm_class = ESM_UDHI
        registered = REGISTERED_DELIVERY_FINAL if self.settings.registered_delivery else 0
        message_ids: list[str] = []
        for index, payload in enumerate(payloads):
            body = ShortMessage(
                source_addr=origin.value,
                source_addr_ton=origin.ton,
                source_addr_npi=origin.npi,
                destination_addr=to.value,
                dest_addr_ton=to.ton,
                dest_addr_npi=to.npi,
                esm_class=esm_class,
                registered_delivery=registered,
                data_coding=DATA_CODING[encoding],
                short_message=payload,
            ).encode()
            message_ids.append(await self._submit_part(msg_ref, index, body, message_ids))
        return SubmitResult(msg_ref, message_ids, len(payloads), encoding, self.name)

    async def _submit_part(self, msg_ref: str, index: int, body: bytes, accepted: list[str]) -> str:
        part = f"part {index + 1}"
        for attempt in range(self.settings.throttle_retries + 1):
            try:
                resp = await self._exchange(CommandId.SUBMIT_SM, body)
            except _NotWritten as exc:
                if index == 0:
                    raise NotSent(msg_ref, str(exc)) from None
                raise Uncertain(
                    msg_ref, f"{part} not sent after earlier parts: {exc}", list(accepted)
                ) from None
            except _NoAnswer as exc:
                raise Uncertain(msg_ref, f"{part} written, {exc}", list(accepted)) from None
            status = resp.command_status
            if resp.command_id == CommandId.SUBMIT_SM_RESP and status == Status.ROK:
                return decode_message_id(resp.body)
            if status in RETRYABLE_STATUSES and resp.command_id == CommandId.SUBMIT_SM_RESP:
                if attempt < self.settings.throttle_retries:
                    await asyncio.sleep(self.settings.throttle_backoff * 2**attempt)
                    continue
                if index == 0:
                    raise NotSent(msg_ref, f"SMSC busy (status 0x{status:x}) after {attempt + 1} attempts")
            detail = "generic_nack" if resp.command_id == CommandId.GENERIC_NACK else part
            raise Rejected(msg_ref, status, detail, list(accepted))
        raise AssertionError("unreachable")  # pragma: no cover

    async def _exchange(self, command_id: int, body: bytes) -> Pdu:
        """Send one request within the window, waiting up to connect_wait for a bound connection."""
        async with self._window:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + self.settings.connect_wait
            while True:
                session = self._session
                if session is not None and not session.closed:
                    try:
                        return await session.request(command_id, body)
                    except _NotWritten:
                        continue  # never left this process: wait for the next bind and send it there
                remaining = deadline - loop.time()
                if remaining <= 0:
                    raise _NotWritten(f"no SMPP connection: {self._last_error}")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._bound.wait(), remaining)

    def _next_sequence(self) -> int:
        self._sequence = self._sequence % 0x7FFFFFFF + 1
        return self._sequence

    async def _open(self) -> _Session:
        settings = self.settings
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(settings.host, settings.port), settings.connect_timeout
            )
        except (OSError, TimeoutError) as exc:
            raise SmppConnectError(f"connect to {settings.host}:{settings.port}: {exc!r}") from exc
        bind = Bind(settings.system_id, settings.password, settings.system_type).encode()
        writer.write(Pdu(CommandId.BIND_TRANSCEIVER, 0, self._next_sequence(), bind).encode())
        try:
            resp = await asyncio.wait_for(read_pdu(reader), settings.response_timeout)
        except (OSError, TimeoutError, asyncio.IncompleteReadError, PduError) as exc:
            writer.close()
            raise SmppConnectError(f"bind to {settings.host}:{settings.port}: {exc!r}") from exc
        if resp.command_id != CommandId.BIND_TRANSCEIVER_RESP or resp.command_status != Status.ROK:
            writer.close()
            raise SmppConnectError(
                f"bind_transceiver refused: command 0x{resp.command_id:x} status 0x{resp.command_status:x}",
                resp.command_status,
            )
        return _Session(self, reader, writer)

    def _install(self, session: _Session) -> None:
        self._session = session
        self._bound.set()

    def _session_lost(self, session: _Session, reason: str) -> None:
        if self._session is session:
            self._session = None
            self._bound.clear()
            self._last_error = reason

    async def _supervise(self) -> None:
        """Reconnect with exponential backoff whenever the bound connection ends."""
        settings = self.settings
        while not self._closing:
            session = self._session
            if session is not None:
                await session.done.wait()
                continue
            delay = settings.reconnect_min
            while not self._closing:
                await asyncio.sleep(delay)
                try:
                    self._install(await self._open())
                    self.reconnects += 1
                    break
                except SmppConnectError as exc:
                    self._last_error = str(exc)
                    delay = min(delay * 2, settings.reconnect_max)
                    log.warning("smpp %s: reconnect failed: %s; retry in %.1fs", self.name, exc, delay)
