"""Opens and clicks into the webhook system, in the batches the tracking roll-up counts them.

Each event becomes a row of the event log (type `message.opened` / `message.clicked`, source `system`,
with the mailing and the recipient's address) in the roll-up's transaction, so it also appears in the
event feed, and is queued for the endpoints that asked for it.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from missiva.audience.enums import Source
from missiva.audience.models import AudienceEvent, Recipient
from missiva.delivery.models import Mailing
from missiva.events import outbox
from missiva.reports.webhooks import MessageEvent


def publish(session: Session, batch: list[MessageEvent]) -> None:
    """Record and queue a roll-up's opens and clicks (recipient-less in privacy mode)."""
    if not batch:
        return
    recipient_ids = {e.recipient_id for e in batch if e.recipient_id is not None}
    emails = (
        dict(
            session.execute(
                select(Recipient.id, Recipient.email).where(Recipient.id.in_(recipient_ids))
            ).all()
        )
        if recipient_ids
        else {}
    )
    mailing_ids = {e.mailing_id for e in batch}
    lists = dict(
        session.execute(select(Mailing.id, Mailing.list_id).where(Mailing.id.in_(mailing_ids))).all()
    )
    rows = []
    for e in batch:
        row = AudienceEvent(
            account_id=e.account_id,
            type=e.type,
            occurred_at=e.occurred_at,
            list_id=lists.get(e.mailing_id),
            recipient_id=e.recipient_id,
            channel="email",
            source=Source.SYSTEM.value,
            mailing_id=e.mailing_id,
            data={**e.data, "email": emails.get(e.recipient_id) if e.recipient_id else None},
        )
        session.add(row)
        rows.append(row)
    session.flush()
    for row in rows:
        outbox.enqueue(session, row)
