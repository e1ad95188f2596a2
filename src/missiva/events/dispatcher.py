"""The dispatcher: claims due deliveries, sends them over keep-alive HTTP, records what happened.

Guarantees:
- at least once: a claim only moves a row's `next_attempt_at` to the end of a lease; a dispatcher killed
  mid-batch leaves the row pending, and it is taken again (same `webhook-id`) when the lease runs out;
- order per recipient: only the oldest pending delivery of an endpoint and recipient can be claimed, so
  event N+1 never leaves before event N was delivered or dead-lettered;
- several dispatchers (threads, processes, machines) may run at once: PostgreSQL claims with
  `FOR UPDATE SKIP LOCKED`, SQLite has a single writer, and a result is only recorded by the claim that
  is still current (matching `attempts`).
"""

from __future__ import annotations

import asyncio
import logging
import random
import ssl
import threading
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any, TypeVar

import httpcore
from sqlalchemy import bindparam, literal_column, select, update
from sqlalchemy.orm import Session

from missiva.audience.models import AudienceEvent
from missiva.db import Database, utcnow
from missiva.events.enums import MESSAGE_EVENT_TYPES, DeliveryStatus, Format
from missiva.events.mailup_format import OutgoingRequest
from missiva.events.models import WebhookDelivery, WebhookEndpoint, message_id
from missiva.events.outgoing import (
    EndpointContext,
    Rendered,
    batch_id,
    endpoint_context,
    render,
    render_batch,
)
from missiva.events.payload import list_infos
from missiva.events.retry import RetryPolicy

log = logging.getLogger(__name__)
T = TypeVar("T")

_RESPONSE_SNIPPET = 300


@dataclass(frozen=True)
class DispatchConfig:
    """Tuning of a dispatcher; the defaults suit one worker process."""

    batch_size: int = 200
    concurrency: int = 64
    batches_in_flight: int = 4
    timeout: float = 10.0
    lease: timedelta = timedelta(seconds=60)
    unhealthy_after: timedelta = timedelta(hours=24)
    poll_interval: float = 1.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)

    def __post_init__(self) -> None:
        if self.lease.total_seconds() < 2 * self.timeout:
            raise ValueError("the claim lease must be at least twice the request timeout")
        if self.batch_size < 1 or self.concurrency < 1 or self.batches_in_flight < 1:
            raise ValueError("batch size, concurrency and batches in flight must be positive")


@dataclass(frozen=True)
class Claimed:
    """A delivery this dispatcher holds until its lease ends."""

    id: int
    endpoint_id: int
    event_id: int
    part: int
    attempts: int
    window_start: datetime


@dataclass(frozen=True)
class Job:
    """One request: `claimed`'s delivery, plus the `riders` carried in the same batch request."""

    claimed: Claimed
    endpoint: EndpointContext | None
    rendered: Rendered | None
    problem: str | None = None
    riders: tuple[Claimed, ...] = ()
    event_type: str | None = None


@dataclass(frozen=True)
class Outcome:
    """The result of one attempt."""

    claimed: Claimed
    ok: bool
    status_code: int | None = None
    latency_ms: int | None = None
    error: str | None = None
    cancelled: bool = False

    @property
    def gone(self) -> bool:
        return self.status_code == 410


class Dispatcher:
    """Delivers the outbox of every account in one database.

    `clock` and `rng` are injectable so tests can drive retries and dead-lettering without waiting.
    """

    def __init__(
        self,
        database: Database,
        installation_secret: str,
        config: DispatchConfig | None = None,
        *,
        clock: Callable[[], datetime] = utcnow,
        rng: random.Random | None = None,
    ) -> None:
        self.db = database
        self.secret = installation_secret
        self.config = config or DispatchConfig()
        self.clock = clock
        self.rng = rng or random.Random()

    # -- running -----------------------------------------------------------------------------------

    def run_once(self) -> list[Outcome]:
        """Claim one batch, send it, record it; the outcomes (empty when nothing was due)."""
        return _run_sync(self._once)

    def run_until_idle(self, max_seconds: float | None = None) -> int:
        """Deliver until nothing is due (or `max_seconds` passed); the number of attempts made."""
        return _run_sync(lambda: self._drain(idle_stop=True, max_seconds=max_seconds))

    def run_forever(self, stop: threading.Event) -> int:
        """Deliver, polling every `poll_interval` when idle, until `stop` is set."""
        return _run_sync(lambda: self._drain(idle_stop=False, stop=stop))

    async def _once(self) -> list[Outcome]:
        async with Lanes(self.config.concurrency, self.config.timeout) as lanes:
            jobs = await asyncio.to_thread(self.claim_batch)
            if not jobs:
                return []
            return await self._deliver(lanes, jobs)

    async def _drain(
        self, *, idle_stop: bool, max_seconds: float | None = None, stop: threading.Event | None = None
    ) -> int:
        deadline = None if max_seconds is None else time.monotonic() + max_seconds
        inflight: set[asyncio.Task[list[Outcome]]] = set()
        attempts = 0

        async def wait_one() -> None:
            nonlocal inflight, attempts
            done, inflight = await asyncio.wait(inflight, return_when=asyncio.FIRST_COMPLETED)
            attempts += sum(len(task.result()) for task in done)

        async with Lanes(self.config.concurrency, self.config.timeout) as lanes:
            while True:
                if (deadline is not None and time.monotonic() > deadline) or (stop and stop.is_set()):
                    break
                if len(inflight) >= self.config.batches_in_flight:
                    await wait_one()
                    continue
                jobs = await asyncio.to_thread(self.claim_batch)
                if jobs:
                    inflight.add(asyncio.create_task(self._deliver(lanes, jobs)))
                elif inflight:
                    # Successors of what is in flight become claimable once it is recorded.
                    await wait_one()
                elif idle_stop:
                    break
                else:
                    await asyncio.to_thread(stop.wait if stop else time.sleep, self.config.poll_interval)
            while inflight:
                await wait_one()
        return attempts

    # -- claiming ----------------------------------------------------------------------------------

    def claim_batch(self) -> list[Job]:
        """Take up to `batch_size` due deliveries and prepare their requests, in one transaction."""
        now = self.clock()
        with self.db.session() as session:
            claimed = claim(session, now, self.config.lease, self.config.batch_size)
            if not claimed:
                return []
            return self._prepare(session, claimed, now)

    def _prepare(self, session: Session, claimed: list[Claimed], now: datetime) -> list[Job]:
        events = {
            e.id: e
            for e in session.scalars(
                select(AudienceEvent).where(AudienceEvent.id.in_({c.event_id for c in claimed}))
            )
        }
        endpoints: dict[int, EndpointContext | str] = {}
        for endpoint in session.scalars(
            select(WebhookEndpoint).where(WebhookEndpoint.id.in_({c.endpoint_id for c in claimed}))
        ):
            try:
                endpoints[endpoint.id] = endpoint_context(endpoint, self.secret, now)
            except Exception as exc:  # a secret that cannot be opened fails its deliveries, not the batch
                endpoints[endpoint.id] = f"endpoint configuration unusable: {exc}"
        lists = list_infos(session, (e.list_id for e in events.values()))
        jobs = []
        for c in claimed:
            ctx = endpoints.get(c.endpoint_id)
            event = events.get(c.event_id)
            if not isinstance(ctx, EndpointContext) or event is None:
                jobs.append(Job(c, None, None, problem=str(ctx or "event no longer exists")))
                continue
            rendered = render(ctx, event, c.part, message_id(c.event_id, c.part), lists)
            jobs.append(Job(c, ctx, rendered, event_type=event.type))
        return batched(jobs)

    # -- sending -----------------------------------------------------------------------------------

    async def _deliver(self, lanes: Lanes, jobs: list[Job]) -> list[Outcome]:
        sent = await asyncio.gather(*(self._send(lanes, job) for job in jobs))
        # A batch request's result is the result of every delivery it carried.
        outcomes = [
            o if i == 0 else replace(o, claimed=c)
            for job, o in zip(jobs, sent, strict=True)
            for i, c in enumerate((job.claimed, *job.riders))
        ]
        await asyncio.to_thread(self.record, outcomes)
        return outcomes

    async def _send(self, lanes: Lanes, job: Job) -> Outcome:
        if job.endpoint is None or job.rendered is None:
            return Outcome(job.claimed, ok=False, error=job.problem)
        if job.rendered.nothing_reason:
            return Outcome(job.claimed, ok=False, error=job.rendered.nothing_reason, cancelled=True)
        async with lanes.lane() as pool:
            # Signed with the wall clock, whatever `clock` says: receivers compare it with theirs.
            request = job.rendered.request(job.endpoint, utcnow())
            started = time.perf_counter()
            try:
                async with asyncio.timeout(self.config.timeout):
                    code, snippet = await _exchange(pool, request, self.config.timeout)
            except TimeoutError:
                return Outcome(job.claimed, ok=False, error=f"timeout after {self.config.timeout:g} s")
            except Exception as exc:  # any network or protocol failure is this attempt's failure
                return Outcome(job.claimed, ok=False, error=f"{type(exc).__name__}: {exc}"[:500])
            latency = round((time.perf_counter() - started) * 1000)
        if 200 <= code < 300:
            return Outcome(job.claimed, ok=True, status_code=code, latency_ms=latency)
        text = snippet.decode("utf-8", "replace").strip()
        return Outcome(
            job.claimed, ok=False, status_code=code, latency_ms=latency, error=f"HTTP {code} {text}"[:500]
        )

    # -- recording ---------------------------------------------------------------------------------

    def record(self, outcomes: list[Outcome]) -> None:
        """Store the outcomes: delivered, retry later, dead-lettered or cancelled; update endpoint health."""
        if not outcomes:
            return
        now = self.clock()
        policy = self.config.retry
        rows = []
        for o in outcomes:
            c = o.claimed
            if o.ok:
                status, next_at = DeliveryStatus.DELIVERED, now
            elif o.cancelled:
                status, next_at = DeliveryStatus.CANCELLED, now
            elif o.gone or policy.gives_up(c.window_start, now):
                status, next_at = DeliveryStatus.DEAD, now
            else:
                status, next_at = DeliveryStatus.PENDING, now + policy.delay(c.attempts, self.rng)
            rows.append(
                {
                    "_id": c.id,
                    "_attempts": c.attempts,
                    "_status": status.value,
                    "_next": next_at,
                    "_delivered": now if o.ok else None,
                    "_code": o.status_code,
                    "_latency": o.latency_ms,
                    "_error": o.error,
                }
            )
        table = WebhookDelivery.__table__
        stmt = (
            update(table)
            .where(table.c.id == bindparam("_id"), table.c.attempts == bindparam("_attempts"))
            .values(
                status=bindparam("_status"),
                next_attempt_at=bindparam("_next"),
                delivered_at=bindparam("_delivered"),
                response_code=bindparam("_code"),
                latency_ms=bindparam("_latency"),
                last_error=bindparam("_error"),
            )
        )
        with self.db.session() as session:
            session.connection().execute(stmt, rows)
            self._record_health(session, outcomes, now)

    def _record_health(self, session: Session, outcomes: list[Outcome], now: datetime) -> None:
        succeeded = {o.claimed.endpoint_id for o in outcomes if o.ok}
        failed = {o.claimed.endpoint_id for o in outcomes if not o.ok and not o.cancelled} - succeeded
        gone = {o.claimed.endpoint_id for o in outcomes if o.gone}
        ep = WebhookEndpoint
        if succeeded:
            session.execute(
                update(ep)
                .where(ep.id.in_(succeeded))
                .values(last_success_at=now, failing_since=None, unhealthy_since=None)
            )
        if failed:
            session.execute(
                update(ep).where(ep.id.in_(failed), ep.failing_since.is_(None)).values(failing_since=now)
            )
            session.execute(
                update(ep)
                .where(
                    ep.id.in_(failed),
                    ep.unhealthy_since.is_(None),
                    ep.failing_since <= now - self.config.unhealthy_after,
                )
                .values(unhealthy_since=now)
            )
        if gone:
            stamp = now.isoformat(timespec="seconds")
            session.execute(
                update(ep)
                .where(ep.id.in_(gone), ep.active.is_(True))
                .values(active=False, disabled_reason=f"the endpoint answered 410 Gone at {stamp}")
            )
            log.warning("webhook endpoints %s answered 410 Gone and were disabled", sorted(gone))


def batched(jobs: list[Job]) -> list[Job]:
    """Message events of endpoints with a batch size travel together, up to that many per request.

    Only native-format message events (delivered, bounced, opened...) are batched; audience events
    keep one request each. Per-recipient order holds: a claim never holds two pending deliveries of
    the same endpoint and recipient.
    """
    out: list[Job] = []
    groups: dict[int, list[Job]] = {}
    for job in jobs:
        ctx, rendered = job.endpoint, job.rendered
        if (
            ctx is not None
            and ctx.batch_size > 1
            and ctx.format == Format.NATIVE
            and job.event_type in MESSAGE_EVENT_TYPES
            and rendered is not None
            and rendered.body is not None
        ):
            groups.setdefault(ctx.id, []).append(job)
        else:
            out.append(job)
    for group in groups.values():
        size = group[0].endpoint.batch_size if group[0].endpoint else 1
        for start in range(0, len(group), size):
            part = group[start : start + size]
            if len(part) == 1:
                out.append(part[0])
                continue
            msg_id = batch_id([j.claimed.id for j in part])
            bodies = [j.rendered.body for j in part if j.rendered and j.rendered.body]
            out.append(
                Job(
                    part[0].claimed,
                    part[0].endpoint,
                    render_batch(msg_id, bodies),
                    riders=tuple(j.claimed for j in part[1:]),
                    event_type="batch",
                )
            )
    return out


def claim(session: Session, now: datetime, lease: timedelta, limit: int) -> list[Claimed]:
    """Lease up to `limit` due deliveries, each the oldest pending one of its endpoint and recipient.

    The status is compared with a literal so both databases can use the partial indexes (which only
    cover pending rows, however long the delivered history grows).
    """
    d = WebhookDelivery.__table__
    earlier = d.alias("earlier")
    e = WebhookEndpoint.__table__
    pending = literal_column(f"'{DeliveryStatus.PENDING.value}'")
    blocked = (
        select(earlier.c.id)
        .where(
            earlier.c.endpoint_id == d.c.endpoint_id,
            earlier.c.order_key == d.c.order_key,
            earlier.c.status == pending,
            earlier.c.id < d.c.id,
        )
        .exists()
    )
    due = (
        select(d.c.id)
        .join(e, e.c.id == d.c.endpoint_id)
        .where(d.c.status == pending, d.c.next_attempt_at <= now, e.c.active.is_(True), ~blocked)
        .order_by(d.c.next_attempt_at, d.c.id)
        .limit(limit)
    )
    if session.get_bind().dialect.name == "postgresql":
        due = due.with_for_update(of=d, skip_locked=True)
    stmt = (
        update(d)
        .where(d.c.id.in_(due.scalar_subquery()))
        .values(attempts=d.c.attempts + 1, next_attempt_at=now + lease, last_attempt_at=now)
        .returning(d.c.id, d.c.endpoint_id, d.c.event_id, d.c.part, d.c.attempts, d.c.window_start)
    )
    rows = session.execute(stmt).all()
    claimed = [
        Claimed(r.id, r.endpoint_id, r.event_id, r.part, r.attempts, _aware(r.window_start)) for r in rows
    ]
    return sorted(claimed, key=lambda c: c.id)


def _aware(value: datetime) -> datetime:
    # Defensive: RETURNING values normally pass through UTCDateTime already.
    return value if value.tzinfo else value.replace(tzinfo=UTC)


class Lanes:
    """`size` HTTP connection pools, each used by one request at a time.

    That bounds concurrency and keeps connections alive (each lane keeps a few, so a handful of
    endpoints share them) without one large pool, whose bookkeeping grows with its size. The pools are
    httpcore's, the transport under httpx: the hot path skips httpx's client layer (cookies, hooks,
    models), which costs as much CPU again as the HTTP exchange itself.
    """

    def __init__(self, size: int, timeout: float) -> None:
        tls = _tls_context()  # loading the CA bundle once, not per pool (~30 ms each)
        self._pools = [
            httpcore.AsyncConnectionPool(
                ssl_context=tls, max_connections=4, max_keepalive_connections=4, keepalive_expiry=30
            )
            for _ in range(size)
        ]
        self._idle: asyncio.Queue[httpcore.AsyncConnectionPool] = asyncio.Queue()
        for pool in self._pools:
            self._idle.put_nowait(pool)

    @asynccontextmanager
    async def lane(self) -> AsyncIterator[httpcore.AsyncConnectionPool]:
        """An idle pool, returned afterwards."""
        pool = await self._idle.get()
        try:
            yield pool
        finally:
            self._idle.put_nowait(pool)

    async def __aenter__(self) -> Lanes:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await asyncio.gather(*(p.aclose() for p in self._pools))


async def _exchange(
    pool: httpcore.AsyncConnectionPool, request: OutgoingRequest, timeout: float
) -> tuple[int, bytes]:
    """Send `request`; the status and the start of the body (enough for the delivery log)."""
    limits = {"connect": timeout, "read": timeout, "write": timeout, "pool": timeout}
    async with pool.stream(
        request.method,
        request.url,
        headers=list(request.headers.items()),
        content=request.content,
        extensions={"timeout": limits},
    ) as response:
        snippet = b""
        async for chunk in response.aiter_stream():
            snippet += chunk
            if len(snippet) >= _RESPONSE_SNIPPET:
                break
        return response.status, snippet[:_RESPONSE_SNIPPET]


@lru_cache(maxsize=1)
def _tls_context() -> ssl.SSLContext:
    return ssl.create_default_context()


def new_event_loop() -> asyncio.AbstractEventLoop:
    """The dispatcher's event loop: uvloop when installed, else asyncio's."""
    # uvloop (installed with uvicorn[standard]) makes the HTTP side about 20 % cheaper.
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def _run(factory: Callable[[], Coroutine[Any, Any, T]]) -> T:
    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        return runner.run(factory())


def _run_sync(factory: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine to completion from synchronous code, even from inside a running event loop
    (an immediate-mode task kicked from an async route)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return _run(factory)
    result: list[T] = []
    errors: list[BaseException] = []

    def target() -> None:
        try:
            result.append(_run(factory))
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=target, name="webhook-dispatch")
    thread.start()
    thread.join()
    if errors:
        raise errors[0]
    return result[0]
