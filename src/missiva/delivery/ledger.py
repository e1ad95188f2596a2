"""The send ledger's state machine: claim rows, record SMTP outcomes, recover a crashed sender's rows.

Every function runs inside the caller's transaction and keeps the mailing's counters in step with the
rows it changes, so `mailings.queued + sent + deferred...` always describe the ledger.

Crash safety rests on one ordering: rows are marked `sending` (and committed) by `claim` before their
SMTP transactions start, and get their outcome only after the reply. A sender that dies leaves
`sending` rows behind; `recover_orphans` turns the ones whose worker is gone into `uncertain` (they
may or may not have been delivered) instead of sending them again.
"""

from __future__ import annotations

import os
import secrets
import socket
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session

from missiva.audience import subscriptions
from missiva.audience.enums import Reason, Source
from missiva.audience.models import Recipient
from missiva.db import utcnow
from missiva.delivery import outcomes as message_outcomes
from missiva.delivery import suppression
from missiva.delivery.models import (
    LedgerEntry,
    LedgerState,
    Mailing,
    MailingStatus,
    SenderWorker,
    SuppressionReason,
)
from missiva.delivery.outcomes import MESSAGE_BOUNCED, MESSAGE_DELIVERED, MessageEvent
from missiva.delivery.smtp import SendResult, SendStatus, retry_delay
from missiva.errors import DomainError

WAITING = (LedgerState.QUEUED, LedgerState.DEFERRED)
ACTIVE = (LedgerState.QUEUED, LedgerState.DEFERRED, LedgerState.SENDING)
LEASE = timedelta(seconds=120)


@dataclass(frozen=True, slots=True)
class Claimed:
    """A ledger row handed to this sender, with what rendering needs."""

    id: int
    recipient_id: int | None
    address: str
    attempts: int
    fields: dict[str, Any]
    email: str | None = None  # the recipient's email, for [email] tags in an SMS

    @property
    def domain(self) -> str:
        return self.address.rpartition("@")[2].lower()


@dataclass
class Claim:
    """What `claim` got: rows, or why none (mailing stopped, throttled until `wait_until`)."""

    rows: list[Claimed] = field(default_factory=list)
    status: str = MailingStatus.RUNNING
    wait_until: float | None = None


# -- workers -------------------------------------------------------------------------------------


def register_worker(session: Session) -> str:
    """Record this process as a sender; its id tags the rows it claims."""
    host, pid = socket.gethostname(), os.getpid()
    worker_id = f"{host}:{pid}:{secrets.token_hex(4)}"[:80]
    now = utcnow()
    session.add(SenderWorker(id=worker_id, host=host[:255], pid=pid, started_at=now, heartbeat_at=now))
    return worker_id


def heartbeat(session: Session, worker_id: str) -> None:
    """Tell other senders this one is alive."""
    session.execute(update(SenderWorker).where(SenderWorker.id == worker_id).values(heartbeat_at=utcnow()))


def unregister_worker(session: Session, worker_id: str) -> None:
    """Forget a sender that stopped cleanly."""
    session.execute(SenderWorker.__table__.delete().where(SenderWorker.id == worker_id))


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _is_dead(worker: SenderWorker | None, now: datetime) -> bool:
    if worker is None:
        return True
    if worker.heartbeat_at < now - LEASE:
        return True
    return worker.host == socket.gethostname()[:255] and not _pid_alive(worker.pid)


def recover_orphans(session: Session, mailing_id: int) -> int:
    """Mark `uncertain` the `sending` rows of senders that died; how many rows that was."""
    now = utcnow()
    owners = session.scalars(
        select(LedgerEntry.claimed_by)
        .where(LedgerEntry.mailing_id == mailing_id, LedgerEntry.state == LedgerState.SENDING)
        .distinct()
    ).all()
    total = 0
    for owner in owners:
        worker = session.get(SenderWorker, owner) if owner else None
        if not _is_dead(worker, now):
            continue
        rows = session.execute(
            select(LedgerEntry.attempts, func.count())
            .where(
                LedgerEntry.mailing_id == mailing_id,
                LedgerEntry.state == LedgerState.SENDING,
                LedgerEntry.claimed_by.is_(None) if owner is None else LedgerEntry.claimed_by == owner,
            )
            .group_by(LedgerEntry.attempts)
        ).all()
        count = sum(n for _, n in rows)
        retried = sum(n for attempts, n in rows if attempts > 0)
        session.execute(
            update(LedgerEntry)
            .where(
                LedgerEntry.mailing_id == mailing_id,
                LedgerEntry.state == LedgerState.SENDING,
                LedgerEntry.claimed_by.is_(None) if owner is None else LedgerEntry.claimed_by == owner,
            )
            .values(state=LedgerState.UNCERTAIN, reason="worker_lost", updated_at=now),
            execution_options={"synchronize_session": False},
        )
        _bump(session, mailing_id, queued=-count, deferred=-retried, uncertain=count)
        if worker is not None:
            session.delete(worker)
        total += count
    return total


# -- claiming ------------------------------------------------------------------------------------


def _window(state: dict[str, Any], name: str, length: int, now: float) -> list[float]:
    start, count = state.get(name) or [0, 0]
    if now - start >= length:
        start, count = now - (now % length), 0
    return [start, count]


def claim(
    session: Session,
    mailing_id: int,
    worker_id: str,
    limit: int,
    *,
    domain_budget: DomainBudget | None = None,
) -> Claim:
    """Mark up to `limit` due rows `sending` for `worker_id` and return them (caller commits first).

    Rows locked by another worker are skipped (PostgreSQL SKIP LOCKED; SQLite has one writer at a
    time). The mailing's per-minute/per-hour budget is shared by all workers through its row.
    """
    mailing = session.get(Mailing, mailing_id, populate_existing=True)
    if mailing is None or mailing.status != MailingStatus.RUNNING:
        return Claim(status=mailing.status if mailing else MailingStatus.CANCELLED)
    now_ts = time.time()
    throttled = mailing.per_minute or mailing.per_hour
    windows: dict[str, list[float]] = {}
    if throttled:
        session.refresh(mailing, with_for_update=True)
        state = dict(mailing.throttle_state or {})
        for name, length, cap in (("minute", 60, mailing.per_minute), ("hour", 3600, mailing.per_hour)):
            if cap:
                windows[name] = _window(state, name, length, now_ts)
                room = cap - int(windows[name][1])
                if room <= 0:
                    return Claim(wait_until=windows[name][0] + length)
                limit = min(limit, room)
    now = utcnow()
    stmt = (
        select(
            LedgerEntry.id,
            LedgerEntry.recipient_id,
            LedgerEntry.address,
            LedgerEntry.attempts,
            Recipient.fields,
            Recipient.email,
        )
        .outerjoin(Recipient, Recipient.id == LedgerEntry.recipient_id)
        .where(
            LedgerEntry.mailing_id == mailing_id,
            LedgerEntry.state.in_(WAITING),
            or_(LedgerEntry.next_attempt_at.is_(None), LedgerEntry.next_attempt_at <= now),
        )
        .order_by(LedgerEntry.id)
        .limit(limit)
    )
    if session.get_bind().dialect.name == "postgresql":
        stmt = stmt.with_for_update(skip_locked=True, of=LedgerEntry)
    rows = [
        Claimed(r.id, r.recipient_id, r.address or "", r.attempts, r.fields or {}, r.email)
        for r in session.execute(stmt)
    ]
    if domain_budget is not None:
        rows, postponed, until = domain_budget.split(rows, now_ts)
        if postponed:
            session.execute(
                update(LedgerEntry)
                .where(LedgerEntry.id.in_([r.id for r in postponed]))
                .values(next_attempt_at=datetime.fromtimestamp(until, now.tzinfo)),
                execution_options={"synchronize_session": False},
            )
    if rows:
        session.execute(
            update(LedgerEntry)
            .where(LedgerEntry.id.in_([r.id for r in rows]))
            .values(state=LedgerState.SENDING, claimed_by=worker_id, updated_at=now),
            execution_options={"synchronize_session": False},
        )
    if windows:
        state = dict(mailing.throttle_state or {})
        for name, (start, count) in windows.items():
            state[name] = [start, count + len(rows)]
        mailing.throttle_state = state
    return Claim(rows=rows)


class DomainBudget:
    """Per-destination-domain limit per minute, kept by this sender process (documented as per worker)."""

    def __init__(self, per_minute: int) -> None:
        self.per_minute = per_minute
        self._window_start = 0.0
        self._counts: Counter[str] = Counter()

    def split(self, rows: list[Claimed], now: float) -> tuple[list[Claimed], list[Claimed], float]:
        """(rows to send now, rows to postpone, when the next window opens)."""
        if now - self._window_start >= 60:
            self._window_start = now - (now % 60)
            self._counts.clear()
        keep, later = [], []
        for row in rows:
            if self._counts[row.domain] < self.per_minute:
                self._counts[row.domain] += 1
                keep.append(row)
            else:
                later.append(row)
        return keep, later, self._window_start + 60


# -- outcomes ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Outcome:
    row: Claimed
    result: SendResult
    message_ref: str | None = None


def _bump(session: Session, mailing_id: int, **deltas: int) -> None:
    values = {name: getattr(Mailing, name) + delta for name, delta in deltas.items() if delta}
    if values:
        session.execute(
            update(Mailing).where(Mailing.id == mailing_id).values(**values),
            execution_options={"synchronize_session": False},
        )


def record(
    session: Session,
    mailing: Mailing,
    outcomes: Sequence[Outcome],
    *,
    max_attempts: int,
    retry_base: float,
) -> list[Outcome]:
    """Write each outcome to its row and the counters; hard bounces suppress and unsubscribe.

    Returns the hard bounces handled. All of it happens in the caller's transaction, so a row is never
    `hard_bounce` without its suppression entry and audience event.
    """
    now = utcnow()
    updates: list[dict[str, Any]] = []
    counts: Counter[str] = Counter()
    bounces: list[Outcome] = []
    exhausted: list[Outcome] = []
    for outcome in outcomes:
        row, result = outcome.row, outcome.result
        attempts = row.attempts + 1
        status = result.status
        next_at = None
        if status is SendStatus.SENT:
            state = LedgerState.SENT
        elif status is SendStatus.HARD_BOUNCE:
            state = LedgerState.HARD_BOUNCE
            bounces.append(outcome)
        elif status is SendStatus.SOFT_FAIL and attempts < max_attempts:
            state = LedgerState.DEFERRED
            next_at = now + timedelta(seconds=retry_delay(attempts, base=retry_base))
        elif status is SendStatus.UNCERTAIN:
            state = LedgerState.UNCERTAIN
        else:
            state = LedgerState.FAILED
            if status is SendStatus.SOFT_FAIL:
                exhausted.append(outcome)
        was_deferred = row.attempts > 0
        if state is LedgerState.DEFERRED:
            counts["deferred"] += 0 if was_deferred else 1
        else:
            counts["queued"] -= 1
            counts["deferred"] -= 1 if was_deferred else 0
            counts[
                {
                    LedgerState.SENT: "sent",
                    LedgerState.HARD_BOUNCE: "hard_bounced",
                    LedgerState.UNCERTAIN: "uncertain",
                    LedgerState.FAILED: "failed",
                }[state]
            ] += 1
        updates.append(
            {
                "id": row.id,
                "state": state.value,
                "attempts": attempts,
                "next_attempt_at": next_at,
                "reply_code": result.code or None,
                "reply_status": result.enhanced,
                "reply_text": result.text[:1000],
                "message_ref": outcome.message_ref,
                "updated_at": now,
                "sent_at": now if state is LedgerState.SENT else None,
                "claimed_by": None,
                "reason": "retries_exhausted"
                if status is SendStatus.SOFT_FAIL and state is LedgerState.FAILED
                else None,
            }
        )
    if updates:
        session.execute(update(LedgerEntry), updates)
    _bump(session, mailing.id, **counts)
    for outcome in bounces:
        hard_bounce(session, mailing, outcome.row.address)
    _publish(session, mailing, outcomes, bounces, exhausted, now)
    return bounces


def _publish(
    session: Session,
    mailing: Mailing,
    outcomes: Sequence[Outcome],
    bounces: list[Outcome],
    exhausted: list[Outcome],
    now: datetime,
) -> None:
    """`message.delivered` (relay accepted; only when an endpoint wants them) and `message.bounced`
    (hard: a 5.1.1-class reply; soft: 4xx replies until the retries ran out).

    An SMS is delivered when its receipt says so (`sms.receipt_matching`), not when the SMSC accepts it.
    """
    channel = mailing.channel
    contact = "mobile" if channel == "sms" else "email"

    def event(type_: str, o: Outcome, **extra: Any) -> MessageEvent:
        reply = f"{o.result.code} {o.result.text}".strip()[:300]
        data = {"mailing_id": mailing.id, contact: o.row.address, "reply": reply, **extra}
        return MessageEvent(type_, mailing.account_id, mailing.id, o.row.recipient_id, now, data, channel)

    events = []
    if channel == "email" and message_outcomes.wanted(session, mailing.account_id, MESSAGE_DELIVERED):
        events = [
            event(MESSAGE_DELIVERED, o, message_id=o.message_ref)
            for o in outcomes
            if o.result.status is SendStatus.SENT
        ]
    reporter = "relay" if channel == "email" else "smsc"
    for o in bounces:
        events.append(event(MESSAGE_BOUNCED, o, kind="hard", status=o.result.enhanced, reported_by=reporter))
    for o in exhausted:
        events.append(event(MESSAGE_BOUNCED, o, kind="soft", status=o.result.enhanced, reported_by=reporter))
    message_outcomes.publish(session, events)


def hard_bounce(session: Session, mailing: Mailing, address: str) -> None:
    """Suppress a dead address account-wide and unsubscribe it from the mailing's list (with its event)."""
    suppression.add(
        session,
        mailing.account_id,
        address,
        reason=SuppressionReason.HARD_BOUNCE,
        source=Source.SYSTEM,
        mailing_id=mailing.id,
    )
    if mailing.list_id is None:
        return
    try:
        with session.begin_nested():
            subscriptions.unsubscribe(
                session,
                mailing.account_id,
                mailing.list_id,
                email=address,
                channel="email",
                reason=Reason.HARD_BOUNCE,
                source=Source.SYSTEM,
                mailing_id=mailing.id,
            )
    except DomainError:
        pass  # not subscribed any more (or never was): the suppression entry is what matters


REPORTED_AFTER = {
    LedgerState.SENT: "sent",
    LedgerState.UNCERTAIN: "uncertain",
    LedgerState.FAILED: "failed",
}
"""Rows a bounce report arriving after the SMTP transaction may turn into hard bounces, and their counter."""


def hard_bounce_reported(
    session: Session,
    mailing: Mailing,
    recipient_id: int | None,
    *,
    status: str | None,
    text: str,
    address: str | None = None,
) -> bool:
    """A hard bounce reported after the SMTP transaction (a DSN, a provider webhook).

    The row becomes `hard_bounce` with the reported status, its counter moves from `sent` (or
    `uncertain`, `failed`) to `hard_bounced`, and the address goes through `hard_bounce` exactly as an
    SMTP-time 5.1.1 does. Rows still being sent are left to their sender; a row already `hard_bounce`
    is left alone. Returns whether the row changed.
    """
    row = None
    if recipient_id is not None:
        row = session.scalars(
            select(LedgerEntry)
            .where(
                LedgerEntry.mailing_id == mailing.id,
                LedgerEntry.recipient_id == recipient_id,
                LedgerEntry.channel == "email",
            )
            .with_for_update()
            .execution_options(populate_existing=True)
        ).one_or_none()
    changed = False
    if row is not None and row.state in REPORTED_AFTER:
        previous = REPORTED_AFTER[LedgerState(row.state)]
        row.state = LedgerState.HARD_BOUNCE
        row.reply_status = (status or "")[:12] or None
        row.reply_text = text[:1000]
        row.reason = "reported"
        row.updated_at = utcnow()
        _bump(session, mailing.id, **{previous: -1, "hard_bounced": 1})
        changed = True
    target = address or (row.address if row is not None else None)
    if target:
        hard_bounce(session, mailing, target)
    return changed


def has_active_rows(session: Session, mailing_id: int) -> bool:
    """Whether any row still waits to be sent, or is being sent."""
    return (
        session.scalar(
            select(LedgerEntry.id)
            .where(LedgerEntry.mailing_id == mailing_id, LedgerEntry.state.in_(ACTIVE))
            .limit(1)
        )
        is not None
    )


def next_retry_at(session: Session, mailing_id: int) -> datetime | None:
    """When the earliest waiting row becomes due (None when no row waits)."""
    base = select(LedgerEntry.id).where(LedgerEntry.mailing_id == mailing_id, LedgerEntry.state.in_(WAITING))
    if session.scalar(base.where(LedgerEntry.next_attempt_at.is_(None)).limit(1)) is not None:
        return utcnow()
    return session.scalar(
        select(func.min(LedgerEntry.next_attempt_at)).where(
            LedgerEntry.mailing_id == mailing_id, LedgerEntry.state.in_(WAITING)
        )
    )
