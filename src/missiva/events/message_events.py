"""Message outcomes (delivered, bounced, complained, opened, clicked) into the webhook system.

Each event becomes a row of the event log (source `system`, with the mailing and the recipient's
address) in the producer's transaction, so it also appears in the event feed, and is queued for the
endpoints that asked for it. `message.delivered` is the exception to "always logged": there is one
per accepted message, so producers only build those when `wanted` says an endpoint subscribed.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from missiva.audience.enums import Source
from missiva.audience.models import AudienceEvent, Recipient
from missiva.delivery import outcomes
from missiva.delivery.models import Mailing
from missiva.delivery.outcomes import MessageEvent
from missiva.events import outbox


def wanted(session: Session, account_id: int, event_type: str) -> bool:
    """Whether an active endpoint of the account names `event_type` (message events are opt-in)."""
    return any(event_type in t.event_types for t in outbox.targets(session, account_id))


def publish(session: Session, batch: list[MessageEvent]) -> None:
    """Record and queue a batch of message events (recipient-less in privacy mode)."""
    if not batch:
        return
    recipient_ids = {e.recipient_id for e in batch if e.recipient_id is not None}
    contacts = (
        {
            r.id: (r.email, r.mobile)
            for r in session.execute(
                select(Recipient.id, Recipient.email, Recipient.mobile).where(Recipient.id.in_(recipient_ids))
            )
        }
        if recipient_ids
        else {}
    )
    mailing_ids = {e.mailing_id for e in batch if e.mailing_id is not None}
    lists = (
        dict(session.execute(select(Mailing.id, Mailing.list_id).where(Mailing.id.in_(mailing_ids))).all())
        if mailing_ids
        else {}
    )
    rows = []
    for e in batch:
        email, mobile = contacts.get(e.recipient_id, (None, None)) if e.recipient_id else (None, None)
        data = {**e.data, "email": e.data.get("email") or email}
        if e.channel == "sms":
            data["mobile"] = e.data.get("mobile") or mobile
        row = AudienceEvent(
            account_id=e.account_id,
            type=e.type,
            occurred_at=e.occurred_at,
            list_id=lists.get(e.mailing_id) if e.mailing_id is not None else None,
            recipient_id=e.recipient_id,
            channel=e.channel,
            source=Source.SYSTEM.value,
            mailing_id=e.mailing_id,
            data=data,
        )
        session.add(row)
        rows.append(row)
    session.flush()
    outbox.enqueue_many(session, rows)


def install() -> None:
    """Make this the publisher of `delivery.outcomes` (the worker calls it at start)."""
    outcomes.set_publisher(publish, wanted)
