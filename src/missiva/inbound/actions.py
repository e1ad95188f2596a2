"""What a bounce, complaint or unsubscribe request does to the audience, whatever it arrived by.

Bounce mails (SMTP receiver, IMAP poller) and provider webhooks (SES, SendGrid, Mailgun, Postmark)
are turned into one `Notification` each and handed to `apply`, inside the caller's transaction:

- hard bounce: the ledger row becomes `hard_bounce` and the address is suppressed and unsubscribed
  through the same code as an SMTP-time 5.1.1 (`delivery.ledger.hard_bounce_reported`);
- soft bounce: counted; the `limit`-th soft bounce (distinct mailings) within `days` suppresses the
  address and unsubscribes it (reason `soft_bounces`);
- complaint: suppressed and unsubscribed (reason `complaint`);
- unsubscribe request with a genuine token: unsubscribed from the mailing's list and suppressed, as the
  one-click link does (reason `list_unsubscribe`);
- anything else is only recorded.

Tenant safety: an action touches only the account that owns the mailing a signed VERP address or token
names. Unsigned ids (X-Missiva-* headers, provider metadata) are believed only when the ledger row they
name was sent to the very address the report is about; a provider webhook is bound to its account.
Idempotency: the log row is inserted first under a unique fingerprint, so the same notification
processed twice (or by two workers at once) acts once.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import case, distinct, func, select, update
from sqlalchemy.orm import Session

from missiva.audience import subscriptions
from missiva.audience.enums import Reason, Source, Status
from missiva.audience.identity import normalise_email
from missiva.audience.models import Recipient, Subscription
from missiva.config import Settings
from missiva.db import insert_ignore, utcnow
from missiva.delivery import ledger, one_click, outcomes, suppression
from missiva.delivery.models import LedgerEntry, Mailing, SuppressionReason
from missiva.errors import DomainError, InvalidEmail
from missiva.inbound.classify import Kind
from missiva.inbound.models import Action, InboundMessage


@dataclass(frozen=True)
class Notification:
    """One report about one address, from a bounce mail or a provider webhook."""

    kind: Kind
    fingerprint: str  # what makes the same report recognisable when it comes again
    source: str  # smtp, imap, ses, sendgrid, mailgun, postmark
    address: str | None = None
    status: str | None = None
    diagnostic: str = ""
    mailing_id: int | None = None
    recipient_id: int | None = None
    verified: bool = False  # mailing/recipient ids come from a signed VERP address
    unsubscribe_token: str | None = None  # from unsubscribe+<token>@: signed, names mailing and recipient


@dataclass(frozen=True)
class Policy:
    """When soft bounces suppress: `limit` of them (distinct mailings) within `days` days."""

    soft_limit: int = 5
    soft_days: int = 14

    @classmethod
    def from_settings(cls, settings: Settings) -> Policy:
        """The policy configured by MISSIVA_SOFT_BOUNCE_LIMIT / MISSIVA_SOFT_BOUNCE_DAYS."""
        return cls(max(1, settings.soft_bounce_limit), max(1, settings.soft_bounce_days))


@dataclass(frozen=True)
class Result:
    """What `apply` did."""

    action: Action
    account_id: int | None = None
    address: str | None = None
    mailing_id: int | None = None
    duplicate: bool = False


@dataclass
class _Target:
    account_id: int
    address: str
    mailing: Mailing | None = None
    recipient_id: int | None = None


def fingerprint(*parts: str | bytes) -> str:
    """A stable idempotency key from the parts that identify a report (sha256, hex)."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part if isinstance(part, bytes) else part.encode("utf-8", "replace"))
        digest.update(b"\x00")
    return digest.hexdigest()


def apply(
    session: Session, note: Notification, *, account_id: int | None = None, policy: Policy | None = None
) -> Result:
    """Act on one notification (in the caller's transaction) and log it.

    `account_id` binds the notification to one account (provider webhooks): ids or tokens naming
    another account's mailing are then ignored. Returns a duplicate Result, doing nothing, when the
    same fingerprint was processed before.
    """
    policy = policy or Policy()
    log = insert_ignore(
        session,
        InboundMessage,
        {
            "fingerprint": note.fingerprint,
            "source": note.source[:16],
            "kind": str(note.kind),
            "status": (note.status or "")[:12] or None,
            "address": _clean(note.address),
            "action": Action.RECORDED.value,
            "diagnostic": note.diagnostic[:300],
            "received_at": utcnow(),
        },
        ["fingerprint"],
        returning_entity=True,
    )
    if log is None:
        return Result(Action.RECORDED, duplicate=True)
    if note.kind in (Kind.AUTOREPLY, Kind.UNKNOWN):
        return Result(Action.RECORDED)
    target = _resolve(session, note, account_id)
    if target is None:
        log.action = Action.UNATTRIBUTED.value
        return Result(Action.UNATTRIBUTED)
    log.account_id = target.account_id
    log.address = target.address
    log.mailing_id = target.mailing.id if target.mailing is not None else None
    log.recipient_id = target.recipient_id
    session.flush()
    action = _act(session, note, target, log, policy)
    log.action = action.value
    if note.kind in _EVENT_TYPES:
        _publish(session, note, target)
    return Result(action, target.account_id, target.address, log.mailing_id)


_EVENT_TYPES = {
    Kind.HARD: outcomes.MESSAGE_BOUNCED,
    Kind.SOFT: outcomes.MESSAGE_BOUNCED,
    Kind.COMPLAINT: outcomes.MESSAGE_COMPLAINED,
}


def _publish(session: Session, note: Notification, target: _Target) -> None:
    """The report as a `message.bounced` / `message.complained` event for the webhook system."""
    mailing_id = target.mailing.id if target.mailing is not None else None
    data: dict[str, Any] = {
        "mailing_id": mailing_id,
        "email": target.address,
        "status": note.status,
        "diagnostic": note.diagnostic[:300],
        "reported_by": note.source,
    }
    if note.kind is not Kind.COMPLAINT:
        data["kind"] = "hard" if note.kind is Kind.HARD else "soft"
    event = outcomes.MessageEvent(
        _EVENT_TYPES[note.kind], target.account_id, mailing_id, target.recipient_id, utcnow(), data
    )
    outcomes.publish(session, [event])


def _act(
    session: Session, note: Notification, target: _Target, log: InboundMessage, policy: Policy
) -> Action:
    mailing = target.mailing
    if note.kind is Kind.HARD:
        if mailing is not None:
            ledger.hard_bounce_reported(
                session,
                mailing,
                target.recipient_id,
                status=note.status,
                text=note.diagnostic,
                address=target.address,
            )
        else:
            _suppress(session, target, SuppressionReason.HARD_BOUNCE, Reason.HARD_BOUNCE)
        return Action.SUPPRESSED
    if note.kind is Kind.COMPLAINT:
        if mailing is not None and _first_of_kind(session, log):
            _count(session, mailing.id, "complaints")
        _suppress(session, target, SuppressionReason.COMPLAINT, Reason.COMPLAINT)
        return Action.SUPPRESSED
    if note.kind is Kind.SOFT:
        if mailing is not None and _first_of_kind(session, log):
            _count(session, mailing.id, "soft_bounced")
        if _soft_bounces(session, target, policy) < policy.soft_limit:
            return Action.COUNTED
        if suppression.find(session, target.account_id, target.address) is not None:
            return Action.COUNTED  # already kept from sending, for this or another reason
        _suppress(session, target, SuppressionReason.SOFT_BOUNCES, Reason.SOFT_BOUNCES)
        return Action.SOFT_LIMIT
    if note.kind is Kind.UNSUBSCRIBE:
        if note.unsubscribe_token is not None:
            found = one_click.target(session, note.unsubscribe_token)
            if found is None:
                return Action.UNATTRIBUTED
            one_click.unsubscribe(session, found)
        else:  # an opt-out report or mail about a message we know, or an email service's own link
            _suppress(
                session,
                target,
                SuppressionReason.LIST_UNSUBSCRIBE,
                Reason.LIST_UNSUBSCRIBE,
                source=Source.RECIPIENT,
            )
        return Action.UNSUBSCRIBED
    return Action.RECORDED


def _resolve(session: Session, note: Notification, account_id: int | None) -> _Target | None:
    """Which account, address, mailing and recipient the notification may act on; None if unknown."""
    if note.unsubscribe_token is not None:
        found = one_click.target(session, note.unsubscribe_token)
        if found is None or (account_id is not None and found.mailing.account_id != account_id):
            return None
        return _Target(
            found.mailing.account_id, found.recipient.email or "", found.mailing, found.recipient.id
        )
    if note.mailing_id is not None:
        target = _by_ids(session, note)
        if target is not None and (account_id is None or target.account_id == account_id):
            return target
    address = _clean(note.address)
    if account_id is None or address is None:
        return None
    recipient_id = session.scalar(
        select(Recipient.id).where(Recipient.account_id == account_id, Recipient.email == address)
    )
    return _Target(account_id, address, None, recipient_id)


def _by_ids(session: Session, note: Notification) -> _Target | None:
    mailing = session.get(Mailing, note.mailing_id)
    if mailing is None:
        return None
    row = None
    if note.recipient_id is not None:
        row = session.scalar(
            select(LedgerEntry).where(
                LedgerEntry.mailing_id == mailing.id,
                LedgerEntry.recipient_id == note.recipient_id,
                LedgerEntry.channel == "email",
            )
        )
    reported = _clean(note.address)
    if not note.verified:
        # Unsigned ids: only believed when they name a message really sent to the reported address.
        if row is None or row.address is None or reported is None or row.address.lower() != reported:
            return None
        return _Target(mailing.account_id, reported, mailing, note.recipient_id)
    address = row.address if row is not None and row.address else None
    if address is None and note.recipient_id is not None:
        recipient = session.get(Recipient, note.recipient_id)
        if recipient is not None and recipient.account_id == mailing.account_id:
            address = recipient.email
    if address is None:
        return None
    return _Target(mailing.account_id, address.lower(), mailing, note.recipient_id)


def _clean(address: str | None) -> str | None:
    if not address:
        return None
    try:
        return normalise_email(address.strip().strip("<>"))
    except InvalidEmail:
        return None


def _suppress(
    session: Session,
    target: _Target,
    why: SuppressionReason,
    reason: Reason,
    *,
    source: str = Source.SYSTEM,
) -> None:
    """Suppress account-wide; unsubscribe from the mailing's list, or every list when no mailing is known."""
    mailing = target.mailing
    suppression.add(
        session,
        target.account_id,
        target.address,
        reason=why,
        source=source,
        mailing_id=mailing.id if mailing is not None else None,
    )
    if mailing is not None:
        list_ids = [mailing.list_id] if mailing.list_id is not None else []
    else:
        list_ids = list(
            session.scalars(
                select(Subscription.list_id)
                .join(Recipient, Recipient.id == Subscription.recipient_id)
                .where(
                    Recipient.account_id == target.account_id,
                    Recipient.email == target.address,
                    Subscription.channel == "email",
                    Subscription.status == Status.SUBSCRIBED,
                )
            )
        )
    for list_id in list_ids:
        try:
            with session.begin_nested():
                subscriptions.unsubscribe(
                    session,
                    target.account_id,
                    list_id,
                    email=target.address,
                    channel="email",
                    reason=reason,
                    source=source,
                    mailing_id=mailing.id if mailing is not None else None,
                )
        except DomainError:
            pass  # not subscribed (any more): the suppression entry is what keeps mail away


def _first_of_kind(session: Session, log: InboundMessage) -> bool:
    """Whether `log` is the first report of its kind for its mailing and address (counted once)."""
    earlier = session.scalar(
        select(InboundMessage.id)
        .where(
            InboundMessage.mailing_id == log.mailing_id,
            InboundMessage.address == log.address,
            InboundMessage.kind == log.kind,
            InboundMessage.id != log.id,
        )
        .limit(1)
    )
    return earlier is None


def _count(session: Session, mailing_id: int, counter: str) -> None:
    column = getattr(Mailing, counter)
    session.execute(
        update(Mailing).where(Mailing.id == mailing_id).values({column: column + 1}),
        execution_options={"synchronize_session": False},
    )


def _soft_bounces(session: Session, target: _Target, policy: Policy) -> int:
    """Soft bounces of the address within the window, one per mailing (reports without one count alone)."""
    since = utcnow() - timedelta(days=policy.soft_days)
    per_mailing = case(
        (InboundMessage.mailing_id.is_(None), -InboundMessage.id), else_=InboundMessage.mailing_id
    )
    return session.scalar(
        select(func.count(distinct(per_mailing))).where(
            InboundMessage.account_id == target.account_id,
            InboundMessage.address == target.address,
            InboundMessage.kind == Kind.SOFT.value,
            InboundMessage.received_at >= since,
        )
    )
