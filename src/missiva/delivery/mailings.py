"""Use cases for mailings: create, schedule or start, pause, resume, cancel, resend uncertain rows.

Starting snapshots the message (later edits do not change a running send) and queues the sender;
everything about individual recipients happens in the ledger (`audience_resolution`, `ledger`).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from missiva.audience.lists import get_list
from missiva.audience.models import MailingList
from missiva.db import on_commit, utcnow
from missiva.delivery import audience_resolution
from missiva.delivery.models import LedgerEntry, LedgerState, Mailing, MailingKind, MailingStatus
from missiva.delivery.sms import content as sms_content
from missiva.delivery.sms import transports as sms_transports
from missiva.errors import Conflict, InvalidInput, NotFound
from missiva.messages import service as messages

# Set by missiva.jobs: queue a sender run for a mailing (after the transaction commits).
_enqueue: Callable[[int], None] | None = None


def set_enqueuer(enqueue: Callable[[int], None]) -> None:
    """How started mailings reach a sender (the Huey task, installed by missiva.jobs)."""
    global _enqueue
    _enqueue = enqueue


def queue_sender(session: Session, mailing_id: int) -> None:
    """Queue a sender run for the mailing once the current transaction commits."""
    if _enqueue is not None:
        enqueue = _enqueue
        on_commit(session, lambda: enqueue(mailing_id))


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise InvalidInput(f"unknown time zone {name!r}", field="timezone") from exc


def scheduled_utc(when: datetime, timezone: str) -> datetime:
    """A start time in UTC: naive times are read in the mailing's time zone."""
    zone = _zone(timezone)
    if when.tzinfo is None:
        when = when.replace(tzinfo=zone)
    return when.astimezone(ZoneInfo("UTC"))


def _positive(value: Any, field: str) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or value < 1:
        raise InvalidInput("must be a positive whole number", field=field)
    return value


def create(session: Session, account_id: int, values: dict[str, Any]) -> Mailing:
    """A draft mailing of a stored message to an audience of the message's list."""
    message = messages.get(session, account_id, int(values["message_id"]))
    lst = get_list(session, account_id, message.list_id)
    audience = audience_resolution.validate(
        session, account_id, lst.id, values.get("audience") or {}, channel=message.channel
    )
    timezone = values.get("timezone") or "UTC"
    _zone(timezone)
    mailing = Mailing(
        account_id=account_id,
        list_id=lst.id,
        message_id=message.id,
        kind=MailingKind.CAMPAIGN,
        channel=message.channel,
        name=values.get("name") or message.name or (message.subject or message.text or "")[:200],
        status=MailingStatus.DRAFT,
        audience=audience,
        timezone=timezone,
        per_minute=_positive(values.get("per_minute"), "per_minute"),
        per_hour=_positive(values.get("per_hour"), "per_hour"),
        per_domain_per_minute=_positive(values.get("per_domain_per_minute"), "per_domain_per_minute"),
        throttle_state={},
        suppressed_by_reason={},
    )
    session.add(mailing)
    session.flush()
    return mailing


def get(session: Session, account_id: int, mailing_id: int) -> Mailing:
    """One mailing of the account; NotFound otherwise."""
    mailing = session.get(Mailing, mailing_id)
    if mailing is None or mailing.account_id != account_id:
        raise NotFound(f"mailing {mailing_id} not found", field="mailing_id")
    return mailing


def _locked(session: Session, account_id: int, mailing_id: int) -> Mailing:
    get(session, account_id, mailing_id)
    return session.scalars(
        select(Mailing)
        .where(Mailing.id == mailing_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).one()


def list_mailings(
    session: Session, account_id: int, *, kind: str = MailingKind.CAMPAIGN, limit: int = 100
) -> list[Mailing]:
    """The account's mailings of one kind, newest first."""
    return list(
        session.scalars(
            select(Mailing)
            .where(Mailing.account_id == account_id, Mailing.kind == kind)
            .order_by(Mailing.id.desc())
            .limit(max(1, min(limit, 1000)))
        )
    )


def start(session: Session, account_id: int, mailing_id: int, *, at: datetime | None = None) -> Mailing:
    """Start a draft now, or schedule it for `at` (naive: the mailing's time zone)."""
    mailing = _locked(session, account_id, mailing_id)
    if mailing.status not in (MailingStatus.DRAFT, MailingStatus.SCHEDULED):
        raise Conflict(f"mailing {mailing_id} is {mailing.status}; only a draft can start", field="status")
    message = messages.get(session, account_id, mailing.message_id) if mailing.message_id else None
    if message is None:
        raise InvalidInput("the mailing's message was deleted", field="message_id")
    if message.channel == "sms":
        mailing.content = sms_content.snapshot(session, message)  # a sender id must be known
        sms_transports.require(session, account_id)
    else:
        lst = session.get(MailingList, mailing.list_id)
        mailing.content = messages.content_of(message, lst)
        messages.message_content(mailing.content)  # a sender address must be known
    if at is not None:
        when = scheduled_utc(at, mailing.timezone)
        if when > utcnow():
            mailing.status = MailingStatus.SCHEDULED
            mailing.scheduled_at = when
            return mailing
    mailing.status = MailingStatus.RUNNING
    mailing.started_at = utcnow()
    queue_sender(session, mailing.id)
    return mailing


def start_due(session: Session, now: datetime | None = None) -> list[int]:
    """Start every scheduled mailing whose time has come (the periodic task); their ids."""
    now = now or utcnow()
    due = list(
        session.scalars(
            select(Mailing)
            .where(Mailing.status == MailingStatus.SCHEDULED, Mailing.scheduled_at <= now)
            .with_for_update(skip_locked=True)
        )
    )
    for mailing in due:
        mailing.status = MailingStatus.RUNNING
        mailing.started_at = now
        queue_sender(session, mailing.id)
    return [m.id for m in due]


def pause(session: Session, account_id: int, mailing_id: int) -> Mailing:
    """Stop claiming rows; rows already handed to SMTP finish and are recorded."""
    mailing = _locked(session, account_id, mailing_id)
    if mailing.status not in (MailingStatus.RUNNING, MailingStatus.SCHEDULED):
        raise Conflict(
            f"mailing {mailing_id} is {mailing.status}; only a running mailing pauses", field="status"
        )
    mailing.status = MailingStatus.PAUSED
    return mailing


def resume(session: Session, account_id: int, mailing_id: int) -> Mailing:
    """Continue a paused mailing."""
    mailing = _locked(session, account_id, mailing_id)
    if mailing.status != MailingStatus.PAUSED:
        raise Conflict(
            f"mailing {mailing_id} is {mailing.status}; only a paused mailing resumes", field="status"
        )
    mailing.status = MailingStatus.RUNNING
    mailing.started_at = mailing.started_at or utcnow()
    queue_sender(session, mailing.id)
    return mailing


def cancel(session: Session, account_id: int, mailing_id: int) -> Mailing:
    """Stop for good: every row not yet handed to SMTP becomes `cancelled`."""
    mailing = _locked(session, account_id, mailing_id)
    if mailing.status in (MailingStatus.FINISHED, MailingStatus.CANCELLED):
        raise Conflict(f"mailing {mailing_id} is already {mailing.status}", field="status")
    mailing.status = MailingStatus.CANCELLED
    mailing.finished_at = utcnow()
    counts = {}
    for state in (LedgerState.QUEUED, LedgerState.DEFERRED):
        # Rows a sender is claiming right now are skipped, not waited for: that sender holds them and
        # waits for this mailing's row, a deadlock. It sees the cancel at its next ledger round trip
        # and cancels the rows it has not handed to SMTP (`ledger.release`).
        waiting = (
            select(LedgerEntry.id)
            .where(LedgerEntry.mailing_id == mailing_id, LedgerEntry.state == state)
            .with_for_update(skip_locked=True)
            .scalar_subquery()
        )
        result = session.execute(
            update(LedgerEntry)
            .where(LedgerEntry.id.in_(waiting))
            .values(state=LedgerState.CANCELLED, updated_at=utcnow()),
            execution_options={"synchronize_session": False},
        )
        counts[state] = result.rowcount or 0
    total = counts[LedgerState.QUEUED] + counts[LedgerState.DEFERRED]
    mailing.queued -= total
    mailing.deferred -= counts[LedgerState.DEFERRED]
    mailing.cancelled_count += total
    return mailing


def resend_uncertain(session: Session, account_id: int, mailing_id: int) -> int:
    """Queue the uncertain rows again (the operator accepts a possible duplicate); how many."""
    mailing = _locked(session, account_id, mailing_id)
    if mailing.status == MailingStatus.CANCELLED:
        raise Conflict(f"mailing {mailing_id} is cancelled", field="status")
    count = session.scalar(
        select(func.count())
        .select_from(LedgerEntry)
        .where(LedgerEntry.mailing_id == mailing_id, LedgerEntry.state == LedgerState.UNCERTAIN)
    )
    if not count:
        return 0
    session.execute(
        update(LedgerEntry)
        .where(LedgerEntry.mailing_id == mailing_id, LedgerEntry.state == LedgerState.UNCERTAIN)
        .values(
            state=LedgerState.QUEUED, attempts=0, next_attempt_at=None, claimed_by=None, updated_at=utcnow()
        ),
        execution_options={"synchronize_session": False},
    )
    mailing.uncertain -= count
    mailing.queued += count
    if mailing.status == MailingStatus.FINISHED:
        mailing.status = MailingStatus.RUNNING
        mailing.finished_at = None
    if mailing.status == MailingStatus.RUNNING:
        queue_sender(session, mailing.id)
    return count


def ledger_page(
    session: Session,
    account_id: int,
    mailing_id: int,
    *,
    state: str | None = None,
    after_id: int = 0,
    limit: int = 100,
) -> list[LedgerEntry]:
    """Ledger rows of a mailing in id order (keyset paging), optionally of one state."""
    get(session, account_id, mailing_id)
    stmt = select(LedgerEntry).where(LedgerEntry.mailing_id == mailing_id, LedgerEntry.id > after_id)
    if state:
        stmt = stmt.where(LedgerEntry.state == state)
    return list(session.scalars(stmt.order_by(LedgerEntry.id).limit(max(1, min(limit, 1000)))))
