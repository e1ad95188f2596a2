"""The audience event log: one append-only row per change, in the change's own transaction.

Other domains react to events through listeners (the webhook outbox, confirmation mails) so that use
cases stay small and the audience package imports none of them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from missiva.audience.models import AudienceEvent, Group, GroupMember, Recipient, Subscription

Listener = Callable[[Session, AudienceEvent], None]
_listeners: list[Listener] = []


def add_listener(listener: Listener) -> None:
    """Call `listener(session, event)` inside the transaction of every recorded event (idempotent)."""
    if listener not in _listeners:
        _listeners.append(listener)


def remove_listener(listener: Listener) -> None:
    """Stop calling `listener`."""
    if listener in _listeners:
        _listeners.remove(listener)


def snapshot(session: Session, recipient: Recipient) -> dict[str, Any]:
    """What a receiver needs to know of the recipient now: identities, fields, groups, statuses."""
    groups = session.execute(
        select(Group.id, Group.list_id)
        .join(GroupMember, GroupMember.group_id == Group.id)
        .where(GroupMember.recipient_id == recipient.id)
        .order_by(Group.id)
    ).all()
    subs = session.execute(
        select(Subscription.list_id, Subscription.channel, Subscription.status)
        .where(Subscription.recipient_id == recipient.id)
        .order_by(Subscription.list_id, Subscription.channel)
    ).all()
    return {
        "email": recipient.email,
        "mobile": recipient.mobile,
        "fields": dict(recipient.fields or {}),
        "groups": [{"id": g.id, "list_id": g.list_id} for g in groups],
        "subscriptions": [{"list_id": s.list_id, "channel": s.channel, "status": s.status} for s in subs],
    }


def record(
    session: Session,
    *,
    account_id: int,
    type: str,
    recipient: Recipient,
    source: str,
    list_id: int | None = None,
    channel: str | None = None,
    reason: str | None = None,
    mailing_id: int | None = None,
    extra: dict[str, Any] | None = None,
    data: dict[str, Any] | None = None,
) -> AudienceEvent:
    """Append one event about `recipient` and notify the listeners.

    `data` replaces the snapshot of the recipient (a deletion must not carry personal data).
    """
    session.flush()
    data = dict(data) if data is not None else snapshot(session, recipient)
    if extra:
        data.update(extra)
    event = AudienceEvent(
        account_id=account_id,
        type=type,
        list_id=list_id,
        recipient_id=recipient.id,
        channel=channel,
        source=source,
        reason=reason,
        mailing_id=mailing_id,
        data=data,
    )
    session.add(event)
    session.flush()
    for listener in list(_listeners):
        listener(session, event)
    return event


def erase_personal_data(session: Session, account_id: int, recipient_id: int) -> None:
    """Blank the personal data in earlier events of a deleted recipient, keeping the events themselves.

    The log stays append-only in what happened (type, time, list, reason); only the snapshot of who it
    happened to is erased, as a cancellation requires.
    """
    session.execute(
        update(AudienceEvent)
        .where(AudienceEvent.account_id == account_id, AudienceEvent.recipient_id == recipient_id)
        .values(data={"erased": True})
    )
