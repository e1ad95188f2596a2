"""The audience event log: one append-only row per change, in the change's own transaction.

Other domains react to events through listeners (the webhook outbox, confirmation mails) so that use
cases stay small and the audience package imports none of them.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from missiva.audience.models import AudienceEvent, Group, GroupMember, Recipient, Subscription

Listener = Callable[[Session, AudienceEvent], None]
BatchListener = Callable[[Session, Sequence[AudienceEvent]], None]
_listeners: list[Listener] = []


class _BatchRegistration:
    def __init__(self, fn: BatchListener, types: frozenset[str] | None, replaces: Listener | None) -> None:
        self.fn = fn
        self.types = types
        self.replaces = replaces


_batch_listeners: list[_BatchRegistration] = []


def add_listener(listener: Listener) -> None:
    """Call `listener(session, event)` inside the transaction of every recorded event (idempotent)."""
    if listener not in _listeners:
        _listeners.append(listener)


def remove_listener(listener: Listener) -> None:
    """Stop calling `listener`."""
    if listener in _listeners:
        _listeners.remove(listener)


def add_batch_listener(
    listener: BatchListener,
    *,
    types: Collection[str] | None = None,
    replaces: Listener | None = None,
) -> None:
    """Call `listener(session, events)` once per bulk write (an import batch) instead of once per event.

    `types` limits it to those event types (so a bulk writer that cannot produce them need not read
    its events back); `replaces` names the per-event listener it stands in for in bulk writes.
    Idempotent.
    """
    if any(r.fn is listener for r in _batch_listeners):
        return
    _batch_listeners.append(_BatchRegistration(listener, frozenset(types) if types else None, replaces))


def remove_batch_listener(listener: BatchListener) -> None:
    """Stop calling `listener`."""
    _batch_listeners[:] = [r for r in _batch_listeners if r.fn is not listener]


def _unreplaced() -> list[Listener]:
    replaced = {r.replaces for r in _batch_listeners}
    return [fn for fn in _listeners if fn not in replaced]


def batch_interest() -> set[str] | None:
    """Event types some listener wants to see from a bulk write: None means every type.

    A per-event listener without a batch form wants them all, so that it still hears about imported
    changes (a webhook outbox, for one).
    """
    if _unreplaced():
        return None
    wanted: set[str] = set()
    for registration in _batch_listeners:
        if registration.types is None:
            return None
        wanted |= registration.types
    return wanted


def notify_batch(session: Session, written: Sequence[AudienceEvent]) -> None:
    """Tell the listeners about events a bulk writer inserted set-based in `session`'s transaction.

    Batch listeners get the whole sequence once; per-event listeners that no batch listener replaces
    get each event, so nothing is silently skipped for bulk writes.
    """
    for registration in list(_batch_listeners):
        chosen = (
            written if registration.types is None else [e for e in written if e.type in registration.types]
        )
        if chosen:
            registration.fn(session, chosen)
    for listener in _unreplaced():
        for event in written:
            listener(session, event)


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
