"""The send ledger's state machine: claim rows, record SMTP outcomes, recover a crashed sender's rows.

Every function runs inside the caller's transaction and keeps the mailing's counters in step with the
rows it changes, so `mailings.queued + sent + deferred...` always describe the ledger.

Crash safety rests on two orderings. Rows are marked `sending` (and committed) by `claim` before their
SMTP transactions start, and get their outcome only after the reply. And a sender that claims ahead
commits a hand-over mark (`hand_over`) before it hands a row past the previous mark to SMTP. A sender
that dies leaves `sending` rows behind; `recover_orphans` returns those past its mark to the queue
(they never reached SMTP) and turns the others into `uncertain` (they may or may not have been
delivered) instead of sending them again.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import sqlite3
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, bindparam, delete, func, or_, select, union_all, update
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from missiva.audience import subscriptions
from missiva.audience.enums import Reason, Source
from missiva.audience.models import Recipient
from missiva.db import dialect_insert, utcnow
from missiva.delivery import outcomes as message_outcomes
from missiva.delivery import suppression
from missiva.delivery.models import (
    DomainWindow,
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


@dataclass(slots=True)  # not frozen: one is made per message, and a frozen __init__ costs 4x
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
    workers = SenderWorker.__table__
    session.connection().execute(
        update(workers).where(workers.c.id == worker_id).values(heartbeat_at=utcnow())
    )


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
        if worker is not None and worker.handed_seq is not None and worker.handed_id is not None:
            _release_where(
                session,
                mailing_id,
                LedgerEntry.claimed_by == owner,
                or_(
                    LedgerEntry.claim_seq > worker.handed_seq,
                    (LedgerEntry.claim_seq == worker.handed_seq) & (LedgerEntry.id > worker.handed_id),
                ),
            )
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


def hand_over(session: Session, worker_id: str, seq: int, row_id: int) -> None:
    """Commit (with the caller's transaction) that the worker may hand its rows up to (seq, row_id) to SMTP.

    Rows are handed in (claim_seq, id) order, so everything after the mark is known never to have
    reached SMTP. The mark is also the worker's heartbeat.
    """
    workers = SenderWorker.__table__
    session.connection().execute(
        update(workers)
        .where(workers.c.id == worker_id)
        .values(heartbeat_at=utcnow(), handed_seq=seq, handed_id=row_id)
    )


def release(session: Session, mailing_id: int, worker_id: str, row_ids: Sequence[int]) -> int:
    """Give back claimed rows that were never handed to SMTP (the run stopped); how many.

    They wait again as they did before the claim, or become `cancelled` if the mailing was cancelled
    meanwhile (`mailings.cancel` leaves `sending` rows to their sender).
    """
    if not row_ids:
        return 0
    released = 0
    for start in range(0, len(row_ids), 500):
        released += _release_where(
            session,
            mailing_id,
            LedgerEntry.claimed_by == worker_id,
            LedgerEntry.id.in_(row_ids[start : start + 500]),
        )
    return released


def _release_where(session: Session, mailing_id: int, *conditions: Any) -> int:
    """Return the matching `sending` rows to `queued`/`deferred` (or `cancelled`), counters in step."""
    mailing = session.get(Mailing, mailing_id, with_for_update=True, populate_existing=True)
    assert mailing is not None
    where = (LedgerEntry.mailing_id == mailing_id, LedgerEntry.state == LedgerState.SENDING, *conditions)
    released = 0
    now = utcnow()
    cancelled = mailing.status == MailingStatus.CANCELLED
    for retried in (False, True):
        if cancelled:
            state = LedgerState.CANCELLED
        else:
            state = LedgerState.DEFERRED if retried else LedgerState.QUEUED
        result = session.execute(
            update(LedgerEntry)
            .where(*where, LedgerEntry.attempts > 0 if retried else LedgerEntry.attempts == 0)
            .values(state=state, claimed_by=None, claim_seq=None, updated_at=now),
            execution_options={"synchronize_session": False},
        )
        count = result.rowcount or 0
        if cancelled and count:
            _bump(
                session, mailing_id, queued=-count, deferred=-count if retried else 0, cancelled_count=count
            )
        released += count
    return released


# -- claiming ------------------------------------------------------------------------------------


def _window(state: dict[str, Any], name: str, length: int, now: float) -> list[float]:
    start, count = state.get(name) or [0, 0]
    if now - start >= length:
        start, count = now - (now % length), 0
    return [start, count]


def _due_rows(session: Session, mailing_id: int, now: datetime, limit: int) -> Select[Any]:
    """The first `limit` due rows by id, with the recipient's fields.

    Each state is read in id order through the (mailing_id, state, id) index and cut at `limit` before
    the two are merged and joined to recipients: a single `state IN (...)` query sorted every waiting
    row of the mailing on each claim, which made a mailing quadratic in its size. On PostgreSQL rows
    locked by another worker's claim are skipped.
    """
    arms = []
    for state, due in (
        (LedgerState.QUEUED, or_(LedgerEntry.next_attempt_at.is_(None), LedgerEntry.next_attempt_at <= now)),
        (LedgerState.DEFERRED, LedgerEntry.next_attempt_at <= now),
    ):
        arm = (
            select(LedgerEntry.id)
            .where(LedgerEntry.mailing_id == mailing_id, LedgerEntry.state == state, due)
            .order_by(LedgerEntry.id)
            .limit(limit)
        )
        if session.get_bind().dialect.name == "postgresql":
            arm = arm.with_for_update(skip_locked=True)
        arms.append(select(arm.subquery().c.id))
    merged = union_all(*arms).subquery()
    picked = select(merged.c.id).order_by(merged.c.id).limit(limit).subquery()
    return (
        select(
            LedgerEntry.id,
            LedgerEntry.recipient_id,
            LedgerEntry.address,
            LedgerEntry.attempts,
            Recipient.fields,
            Recipient.email,
        )
        .join(picked, picked.c.id == LedgerEntry.id)
        .outerjoin(Recipient, Recipient.id == LedgerEntry.recipient_id)
        .order_by(LedgerEntry.id)
    )


def claim(
    session: Session,
    mailing_id: int,
    worker_id: str,
    limit: int,
    *,
    domain_budget: DomainBudget | None = None,
    seq: int | None = None,
) -> Claim:
    """Mark up to `limit` due rows `sending` for `worker_id` and return them in id order (caller commits
    first); `seq` numbers the worker's claims for its hand-over mark (`hand_over`).

    Rows locked by another worker are skipped (PostgreSQL SKIP LOCKED; SQLite has one writer at a
    time). The mailing's per-minute/per-hour budget is shared by all workers through its row.
    """
    mailing = session.get(Mailing, mailing_id, populate_existing=True)
    if mailing is None or mailing.status != MailingStatus.RUNNING:
        return Claim(status=mailing.status if mailing else MailingStatus.CANCELLED)
    now_ts = time.time()
    # A per-domain limit is counted in a table shared by the mailing's senders: lock the mailing too.
    throttled = mailing.per_minute or mailing.per_hour or (domain_budget is not None)
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
    connection = session.connection()
    if connection.dialect.name == "postgresql" and domain_budget is None:
        rows = _claim_pg(connection, mailing_id, worker_id, limit, seq, now)
        _spend_windows(mailing, windows, len(rows))
        return Claim(rows=rows)
    rows = [
        Claimed(row_id, recipient_id, address or "", attempts, fields or {}, email)
        for row_id, recipient_id, address, attempts, fields, email in connection.execute(
            _due_rows(session, mailing_id, now, limit)
        )
    ]
    if domain_budget is not None:
        rows, postponed, until = domain_budget.split(session, mailing_id, rows, now_ts)
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
            .values(state=LedgerState.SENDING, claimed_by=worker_id, claim_seq=seq, updated_at=now),
            execution_options={"synchronize_session": False},
        )
    _spend_windows(mailing, windows, len(rows))
    return Claim(rows=rows)


def _spend_windows(mailing: Mailing, windows: dict[str, list[float]], claimed: int) -> None:
    """Count the claimed rows in the mailing's per-minute/per-hour windows."""
    if windows:
        state = dict(mailing.throttle_state or {})
        for name, (start, count) in windows.items():
            state[name] = [start, count + claimed]
        mailing.throttle_state = state


# PostgreSQL: pick the due rows (each state in id order, rows locked by another claim skipped), mark
# them and read them back with the recipients' fields in one statement: one round trip, and no
# 500-parameter UPDATE to build and parse per claim.
_CLAIM_PG = """
WITH queued AS (
    SELECT id FROM send_ledger
    WHERE mailing_id = %(mailing)s AND state = 'queued'
      AND (next_attempt_at IS NULL OR next_attempt_at <= %(now)s)
    ORDER BY id LIMIT %(limit)s FOR UPDATE SKIP LOCKED
), deferred AS (
    SELECT id FROM send_ledger
    WHERE mailing_id = %(mailing)s AND state = 'deferred' AND next_attempt_at <= %(now)s
    ORDER BY id LIMIT %(limit)s FOR UPDATE SKIP LOCKED
), picked AS (
    SELECT id FROM (SELECT id FROM queued UNION ALL SELECT id FROM deferred) AS due
    ORDER BY id LIMIT %(limit)s
), claimed AS (
    UPDATE send_ledger AS l
    SET state = 'sending', claimed_by = %(worker)s, claim_seq = %(seq)s, updated_at = %(now)s
    FROM picked WHERE l.id = picked.id
    RETURNING l.id, l.recipient_id, l.address, l.attempts
)
SELECT c.id, c.recipient_id, c.address, c.attempts, r.fields, r.email
FROM claimed AS c LEFT JOIN recipients AS r ON r.id = c.recipient_id
ORDER BY c.id
"""


def _claim_pg(
    connection: Connection, mailing_id: int, worker_id: str, limit: int, seq: int | None, now: datetime
) -> list[Claimed]:
    params = {"mailing": mailing_id, "now": now, "limit": limit, "worker": worker_id, "seq": seq}
    return [
        Claimed(row_id, recipient_id, address or "", attempts, fields or {}, email)
        for row_id, recipient_id, address, attempts, fields, email in connection.exec_driver_sql(
            _CLAIM_PG, params
        ).fetchall()
    ]


class DomainBudget:
    """Per-destination-domain limit per minute, shared by every sender of the mailing.

    The minute's counts live in `send_domain_windows`. A claim of a mailing with this limit locks the
    mailing's row first (see `claim`), so two senders never spend the same minute's budget twice.
    """

    def __init__(self, per_minute: int) -> None:
        self.per_minute = per_minute

    def split(
        self, session: Session, mailing_id: int, rows: list[Claimed], now: float
    ) -> tuple[list[Claimed], list[Claimed], float]:
        """(rows to send now, rows to postpone, when the next window opens); counts what is kept."""
        window = int(now - now % 60)
        domains = {row.domain for row in rows}
        if not domains:
            return rows, [], window + 60
        table = DomainWindow.__table__
        session.execute(delete(table).where(table.c.mailing_id == mailing_id, table.c.window_start < window))
        spent = dict(
            session.execute(
                select(table.c.domain, table.c.count).where(
                    table.c.mailing_id == mailing_id,
                    table.c.window_start == window,
                    table.c.domain.in_(domains),
                )
            ).all()
        )
        used: Counter[str] = Counter()
        keep, later = [], []
        for row in rows:
            if spent.get(row.domain, 0) + used[row.domain] < self.per_minute:
                used[row.domain] += 1
                keep.append(row)
            else:
                later.append(row)
        if used:
            stmt = dialect_insert(session)(table).values(
                [
                    {"mailing_id": mailing_id, "domain": domain, "window_start": window, "count": n}
                    for domain, n in used.items()
                ]
            )
            session.execute(
                stmt.on_conflict_do_update(
                    index_elements=[table.c.mailing_id, table.c.domain],
                    set_={"count": table.c.count + stmt.excluded.count},
                )
            )
        return keep, later, window + 60


# -- outcomes ------------------------------------------------------------------------------------


@dataclass(slots=True)  # not frozen: one is made per message
class Outcome:
    row: Claimed
    result: SendResult
    message_ref: str | None = None


def _bump(session: Session, mailing_id: int, **deltas: int) -> None:
    """Add `deltas` to the mailing's counters (a Core UPDATE: the ORM's bulk-update path cost more)."""
    table = Mailing.__table__
    values = {name: table.c[name] + delta for name, delta in deltas.items() if delta}
    if values:
        session.connection().execute(update(table).where(table.c.id == mailing_id).values(**values))


class _DriverStatement:
    """A Core statement compiled once per dialect and run through the driver's own executemany.

    SQLAlchemy's executemany builds and type-processes a parameter dict per row, which cost four times
    what SQLite spent applying the rows. Parameters are given here as the driver expects them: values
    whose column type converts them (datetimes) must be passed through `driver_value` first.
    """

    def __init__(self, statement: Any) -> None:
        self.statement = statement
        self._compiled: dict[str, tuple[str, bool, list[tuple[str, Any]]]] = {}

    def _compile(self, dialect: Any) -> tuple[str, bool, list[tuple[str, Any]]]:
        done = self.statement.compile(dialect=dialect)
        # Constants in the statement (`.values(state="sent")`) become bound parameters too: their
        # driver values are computed once here.
        constants = {}
        for name, bind in done.binds.items():
            if bind.required:  # a per-row bindparam("b_...")
                continue
            processor = bind.type.dialect_impl(dialect).bind_processor(dialect)
            value = bind.value
            constants[name] = processor(value) if processor is not None and value is not None else value
        names = done.positiontup if done.positional else list(done.binds)
        return done.string, done.positional, [(name, constants.get(name, _PER_ROW)) for name in names or ()]

    def executemany(self, connection: Connection, rows: list[dict[str, Any]]) -> None:
        dialect = connection.dialect
        compiled = self._compiled.get(dialect.name)
        if compiled is None:
            compiled = self._compiled[dialect.name] = self._compile(dialect)
        sql, positional, order = compiled
        params: list[Any]
        if positional:
            params = [tuple(row[name] if c is _PER_ROW else c for name, c in order) for row in rows]
        else:
            params = [{name: row[name] if c is _PER_ROW else c for name, c in order} for row in rows]
        connection.exec_driver_sql(sql, params)


_PER_ROW = object()


def driver_value(connection: Connection, column: Any, value: Any) -> Any:
    """`value` as the driver stores it in `column` (e.g. a UTC datetime as SQLite text)."""
    processor = column.type.dialect_impl(connection.dialect).bind_processor(connection.dialect)
    return value if value is None or processor is None else processor(value)


_TABLE = LedgerEntry.__table__
# One prepared UPDATE for an outcome, run as executemany: per row only what differs between rows.
_RECORD_OUTCOME = _DriverStatement(
    update(_TABLE)
    .where(_TABLE.c.id == bindparam("b_id"))
    .values(
        state=bindparam("b_state"),
        attempts=_TABLE.c.attempts + 1,
        next_attempt_at=bindparam("b_next"),
        reply_code=bindparam("b_code"),
        reply_status=bindparam("b_status"),
        reply_text=bindparam("b_text"),
        message_ref=bindparam("b_ref"),
        updated_at=bindparam("b_now"),
        sent_at=bindparam("b_sent"),
        claimed_by=None,
        reason=bindparam("b_reason"),
    )
)
# PostgreSQL: the delivered rows of a chunk in one statement, their values as one JSON array (one round
# trip and one plan instead of one UPDATE execution per row; JSON rather than five arrays because the
# driver quoted every text array element in Python, which cost more than the update).
_RECORD_SENT_PG = """
UPDATE send_ledger AS l SET state = 'sent', attempts = l.attempts + 1, next_attempt_at = NULL,
    reply_code = (v.value->>1)::integer, reply_status = v.value->>2, reply_text = v.value->>3,
    message_ref = v.value->>4, updated_at = %(now)s, sent_at = %(now)s, claimed_by = NULL, reason = NULL
FROM jsonb_array_elements(%(rows)s::jsonb) AS v
WHERE l.id = (v.value->>0)::bigint
"""


# SQLite: the same in one statement, the rows passed as one JSON array read by json_each (UPDATE ...
# FROM needs SQLite 3.33): a third of the cost of executing the UPDATE once per row.
_RECORD_SENT_SQLITE = """
UPDATE send_ledger SET state = 'sent', attempts = attempts + 1, next_attempt_at = NULL,
    reply_code = v.code, reply_status = v.status, reply_text = v.text, message_ref = v.ref,
    updated_at = ?, sent_at = ?, claimed_by = NULL, reason = NULL
FROM (SELECT json_extract(value, '$[0]') AS id, json_extract(value, '$[1]') AS code,
             json_extract(value, '$[2]') AS status, json_extract(value, '$[3]') AS text,
             json_extract(value, '$[4]') AS ref
      FROM json_each(?)) AS v
WHERE send_ledger.id = v.id
"""
_SQLITE_UPDATE_FROM = sqlite3.sqlite_version_info >= (3, 33)


def _record_sent(connection: Connection, rows: list[list[Any]], now: datetime, stamp: Any) -> None:
    """Delivered rows, each ``[id, code, enhanced status, text, message ref]``, in one statement."""
    if connection.dialect.name == "sqlite" and _SQLITE_UPDATE_FROM:
        connection.exec_driver_sql(_RECORD_SENT_SQLITE, (stamp, stamp, json.dumps(rows)))
    elif connection.dialect.name == "postgresql":
        connection.exec_driver_sql(_RECORD_SENT_PG, {"now": now, "rows": json.dumps(rows)})
    else:  # SQLite before 3.33: the rows one UPDATE execution each
        names = ("b_id", "b_code", "b_status", "b_text", "b_ref")
        delivered = {"b_state": LedgerState.SENT.value, "b_next": None, "b_reason": None}
        delivered |= {"b_now": stamp, "b_sent": stamp}
        params = [{**dict(zip(names, row, strict=True)), **delivered} for row in rows]
        _RECORD_OUTCOME.executemany(connection, params)


_COUNTER = {
    LedgerState.SENT: "sent",
    LedgerState.HARD_BOUNCE: "hard_bounced",
    LedgerState.UNCERTAIN: "uncertain",
    LedgerState.FAILED: "failed",
}


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
    `hard_bounce` without its suppression entry and audience event. Delivered rows, whose state and
    timestamps are the same for the whole chunk, go in one statement (`_record_sent`); the rest through
    one prepared Core UPDATE run as executemany; the ORM's per-row bookkeeping cost more than the
    database did.
    """
    now = utcnow()
    connection = session.connection()
    stamp = driver_value(connection, _TABLE.c.updated_at, now)
    sent: list[list[Any]] = []
    other: list[dict[str, Any]] = []
    counts: Counter[str] = Counter()
    bounces: list[Outcome] = []
    exhausted: list[Outcome] = []
    for outcome in outcomes:
        row, result = outcome.row, outcome.result
        status = result.status
        was_deferred = row.attempts > 0
        if status is SendStatus.SENT:
            counts["queued"] -= 1
            counts["sent"] += 1
            if was_deferred:
                counts["deferred"] -= 1
            ref = outcome.message_ref
            sent.append([row.id, result.code or None, result.enhanced, result.text[:1000], ref])
            continue
        attempts = row.attempts + 1
        next_at = None
        if status is SendStatus.HARD_BOUNCE:
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
        if state is LedgerState.DEFERRED:
            counts["deferred"] += 0 if was_deferred else 1
        else:
            counts["queued"] -= 1
            counts["deferred"] -= 1 if was_deferred else 0
            counts[_COUNTER[state]] += 1
        other.append(
            {
                "b_id": row.id,
                "b_state": state.value,
                "b_next": driver_value(connection, _TABLE.c.next_attempt_at, next_at),
                "b_code": result.code or None,
                "b_status": result.enhanced,
                "b_text": result.text[:1000],
                "b_ref": outcome.message_ref,
                "b_now": stamp,
                "b_sent": None,
                "b_reason": "retries_exhausted"
                if status is SendStatus.SOFT_FAIL and state is LedgerState.FAILED
                else None,
            }
        )
    if sent:
        _record_sent(connection, sent, now, stamp)
    if other:
        _RECORD_OUTCOME.executemany(connection, other)
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
