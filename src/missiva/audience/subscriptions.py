"""Use cases for subscriptions, with MailUp's semantics.

- subscribe: new -> subscribed (single opt-in) or pending (double opt-in); already subscribed is a
  distinct outcome; an unsubscribed recipient stays unsubscribed unless the caller forces it, and
  otherwise is asked to confirm a new opt-in (pending).
- unsubscribe: with a reason and a source; unknown, pending or already unsubscribed is NotSubscribed.
- confirm: a pending subscription becomes subscribed when the recipient follows the link.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from missiva.audience import events, recipients
from missiva.audience.enums import Channel, EventType, OptIn, Reason, Source, Status
from missiva.audience.lists import get_group, get_list
from missiva.audience.models import GroupMember, MailingList, Recipient, Subscription
from missiva.db import insert_ignore, utcnow
from missiva.errors import InvalidInput, NotFound, NotSubscribed


class Outcome(StrEnum):
    SUBSCRIBED = "subscribed"
    PENDING = "pending"
    ALREADY_SUBSCRIBED = "already_subscribed"


@dataclass(frozen=True)
class Consent:
    """Evidence of the recipient's agreement, stored on the subscription."""

    method: str = "api"
    ip: str | None = None


@dataclass(frozen=True)
class SubscribeResult:
    outcome: Outcome
    recipient: Recipient
    subscription: Subscription
    created: bool


def subscribe(
    session: Session,
    account_id: int,
    list_id: int,
    *,
    email: str | None = None,
    mobile: str | None = None,
    channel: str | None = None,
    fields: Mapping[str | int, Any] | None = None,
    groups: Iterable[int] = (),
    replace_groups: bool = False,
    double_opt_in: bool | None = None,
    force: bool = False,
    source: str = Source.API,
    consent: Consent | None = None,
) -> SubscribeResult:
    """Subscribe a recipient (created if new) to a list on one channel.

    `double_opt_in` None follows the list's setting. `force` subscribes at once whatever the current
    status (MailUp's forceOptIn). Raises NotFound (list, group), InvalidEmail, InvalidMobile,
    InvalidInput (field).
    """
    lst = get_list(session, account_id, list_id)
    ident, chan = _identity_and_channel(session, account_id, email, mobile, channel)
    if chan is Channel.EMAIL and not ident.email:
        raise InvalidInput("an email address is required for the email channel", field="email")
    if chan is Channel.SMS and not ident.mobile:
        raise InvalidInput("a mobile number is required for the sms channel", field="mobile")
    resolved = recipients.resolve_fields(session, account_id, fields)
    group_ids = list(dict.fromkeys(int(g) for g in groups))
    for gid in group_ids:
        get_group(session, account_id, gid, list_id=list_id)

    recipient = _insert_new_recipient(session, account_id, ident, resolved)
    created = recipient is not None
    changes = recipients.Changes()
    confirm = (lst.opt_in == OptIn.DOUBLE) if double_opt_in is None else double_opt_in
    consent = consent or Consent(method=str(source))
    if recipient is not None:
        # A brand-new recipient: nothing to compare or lock, and the event snapshot is known.
        for gid in group_ids:
            session.add(GroupMember(group_id=gid, recipient_id=recipient.id, account_id=account_id))
        sub = Subscription(
            account_id=account_id,
            recipient_id=recipient.id,
            list_id=list_id,
            channel=chan.value,
            status="new",
        )
        session.add(sub)
        known = {"groups": [{"id": gid, "list_id": list_id} for gid in group_ids]}
        outcome = _transition(
            session,
            lst,
            recipient,
            sub,
            confirm=confirm,
            force=force,
            source=source,
            consent=consent,
            known=known,
        )
        return SubscribeResult(outcome=outcome, recipient=recipient, subscription=sub, created=True)

    recipient = recipients.find(session, account_id, ident)
    if recipient is None:  # only possible if the other identity clashed with a third recipient
        raise InvalidInput("mobile number belongs to another recipient", field="mobile")
    _attach_missing_identity(session, account_id, recipient, ident, changes)
    recipients.apply_fields(recipient, resolved, changes)
    recipients.apply_groups(
        session,
        account_id,
        recipient,
        group_ids,
        changes,
        replace_in_lists=[list_id] if replace_groups else (),
    )
    sub = _get_or_create_subscription(session, account_id, recipient.id, list_id, chan)
    outcome = _transition(
        session, lst, recipient, sub, confirm=confirm, force=force, source=source, consent=consent
    )
    recipients.record_changes(session, account_id, recipient, changes, source=source, list_id=list_id)
    return SubscribeResult(outcome=outcome, recipient=recipient, subscription=sub, created=created)


def _identity_and_channel(
    session: Session, account_id: int, email: str | None, mobile: str | None, channel: str | None
) -> tuple[recipients.Identity, Channel]:
    """The validated identities, and the channel asked for (email when an address is given, else sms)."""
    ident = recipients.identity(session, account_id, email, mobile)
    return ident, Channel(channel) if channel else (Channel.EMAIL if ident.email else Channel.SMS)


def _insert_new_recipient(
    session: Session, account_id: int, ident: recipients.Identity, fields: dict[str, str]
) -> Recipient | None:
    """Insert the recipient unless one with either identity exists; the new row, or None.

    One statement whether it is new or not, and safe when two calls race for the same address.
    """
    now = utcnow()
    values = {
        "account_id": account_id,
        "email": ident.email,
        "mobile": ident.mobile,
        "fields": {k: v for k, v in fields.items() if v},
        "created_at": now,
        "updated_at": now,
    }
    return insert_ignore(session, Recipient, values, returning_entity=True)


def _attach_missing_identity(
    session: Session,
    account_id: int,
    recipient: Recipient,
    ident: recipients.Identity,
    changes: recipients.Changes,
) -> None:
    """Give a recipient found by one identity the other one too, unless someone else has it."""
    email_free = (
        ident.email and recipients.find(session, account_id, recipients.Identity(email=ident.email)) is None
    )
    if ident.email and not recipient.email and email_free:
        changes.email = [None, ident.email]
        recipient.email = ident.email
    if ident.mobile and not recipient.mobile:
        other = session.scalar(
            select(Recipient.id).where(Recipient.account_id == account_id, Recipient.mobile == ident.mobile)
        )
        if other is None:
            changes.mobile = [None, ident.mobile]
            recipient.mobile = ident.mobile


def _get_or_create_subscription(
    session: Session, account_id: int, recipient_id: int, list_id: int, channel: Channel
) -> Subscription:
    now = utcnow()
    insert_ignore(
        session,
        Subscription,
        {
            "account_id": account_id,
            "recipient_id": recipient_id,
            "list_id": list_id,
            "channel": channel.value,
            "status": "new",
            "created_at": now,
            "updated_at": now,
        },
        ["recipient_id", "list_id", "channel"],
    )
    # Lock the row so concurrent calls for the same subscription change its state one at a time.
    stmt = (
        select(Subscription)
        .where(
            Subscription.recipient_id == recipient_id,
            Subscription.list_id == list_id,
            Subscription.channel == channel.value,
        )
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return session.scalars(stmt).one()


def _transition(
    session: Session,
    lst: MailingList,
    recipient: Recipient,
    sub: Subscription,
    *,
    confirm: bool,
    force: bool,
    source: str,
    consent: Consent,
    known: dict[str, Any] | None = None,
) -> Outcome:
    """Move a subscription to pending or subscribed and record the event.

    `known` carries the groups of a recipient created in this call, so its event snapshot needs no query.
    """
    now = utcnow()
    current = sub.status
    if current == Status.SUBSCRIBED:
        return Outcome.ALREADY_SUBSCRIBED
    # A new opt-in of someone who unsubscribed, or an unforced repeat of a pending request, must be
    # confirmed by the recipient; only `force` skips that.
    needs_confirmation = not force and (confirm or current in (Status.UNSUBSCRIBED, Status.PENDING))
    sub.updated_at = now
    sub.consent_method = consent.method
    sub.consent_ip = consent.ip
    sub.consent_at = now
    if needs_confirmation:
        sub.status = Status.PENDING
        sub.requested_at = now
        session.flush()
        events.record(
            session,
            account_id=lst.account_id,
            type=EventType.SUBSCRIPTION_REQUESTED,
            recipient=recipient,
            source=source,
            list_id=lst.id,
            channel=sub.channel,
            extra={"subscription_id": sub.id, "previous_status": _previous(current)},
            data=_known_snapshot(recipient, sub, known),
        )
        return Outcome.PENDING
    sub.status = Status.SUBSCRIBED
    sub.subscribed_at = now
    sub.unsubscribed_at = None
    sub.unsubscribe_reason = None
    sub.unsubscribe_source = None
    sub.unsubscribe_mailing_id = None
    method = "forced" if force and current in (Status.UNSUBSCRIBED, Status.PENDING) else "single_opt_in"
    events.record(
        session,
        account_id=lst.account_id,
        type=EventType.SUBSCRIPTION_CONFIRMED,
        recipient=recipient,
        source=source,
        list_id=lst.id,
        channel=sub.channel,
        extra={"method": method, "previous_status": _previous(current)},
        data=_known_snapshot(recipient, sub, known),
    )
    return Outcome.SUBSCRIBED


def _known_snapshot(
    recipient: Recipient, sub: Subscription, known: dict[str, Any] | None
) -> dict[str, Any] | None:
    """The event snapshot of a recipient created in this call (None: let events query it)."""
    if known is None:
        return None
    return {
        "email": recipient.email,
        "mobile": recipient.mobile,
        "fields": dict(recipient.fields or {}),
        "groups": known["groups"],
        "subscriptions": [{"list_id": sub.list_id, "channel": sub.channel, "status": sub.status}],
    }


def _previous(status: str) -> str | None:
    return None if status == "new" else status


def unsubscribe(
    session: Session,
    account_id: int,
    list_id: int,
    *,
    email: str | None = None,
    mobile: str | None = None,
    channel: str | None = None,
    reason: str = Reason.API,
    source: str = Source.API,
    mailing_id: int | None = None,
) -> Subscription:
    """Unsubscribe a subscribed recipient from a list; NotSubscribed if unknown, pending or already out."""
    get_list(session, account_id, list_id)
    try:
        why = Reason(reason)
    except ValueError as exc:
        raise InvalidInput(f"unknown unsubscribe reason {reason!r}", field="reason") from exc
    ident, chan = _identity_and_channel(session, account_id, email, mobile, channel)
    recipient = recipients.find(session, account_id, ident)
    sub = None
    if recipient is not None:
        sub = session.scalars(
            select(Subscription)
            .where(
                Subscription.recipient_id == recipient.id,
                Subscription.list_id == list_id,
                Subscription.channel == chan.value,
            )
            .with_for_update()
            .execution_options(populate_existing=True)
        ).one_or_none()
    if recipient is None or sub is None or sub.status != Status.SUBSCRIBED:
        state = "not a recipient of" if sub is None else f"{sub.status} on"
        raise NotSubscribed(
            f"recipient is {state} list {list_id}", field="email" if ident.email else "mobile"
        )
    return _unsubscribe(session, recipient, sub, why, source, mailing_id)


def _unsubscribe(
    session: Session,
    recipient: Recipient,
    sub: Subscription,
    reason: Reason,
    source: str,
    mailing_id: int | None,
) -> Subscription:
    now = utcnow()
    sub.status = Status.UNSUBSCRIBED
    sub.unsubscribed_at = now
    sub.updated_at = now
    sub.unsubscribe_reason = reason.value
    sub.unsubscribe_source = str(source)
    sub.unsubscribe_mailing_id = mailing_id
    events.record(
        session,
        account_id=sub.account_id,
        type=EventType.SUBSCRIPTION_UNSUBSCRIBED,
        recipient=recipient,
        source=source,
        list_id=sub.list_id,
        channel=sub.channel,
        reason=reason.value,
        mailing_id=mailing_id,
        extra={"optout_type": reason.optout_type},
    )
    return sub


def status(
    session: Session,
    account_id: int,
    list_id: int,
    *,
    email: str | None = None,
    mobile: str | None = None,
    channel: str | None = None,
) -> Subscription | None:
    """The recipient's subscription to a list on a channel, or None if there is none."""
    get_list(session, account_id, list_id)
    ident, chan = _identity_and_channel(session, account_id, email, mobile, channel)
    recipient = recipients.find(session, account_id, ident)
    if recipient is None:
        return None
    return session.scalar(
        select(Subscription).where(
            Subscription.recipient_id == recipient.id,
            Subscription.list_id == list_id,
            Subscription.channel == chan.value,
            Subscription.status != "new",
        )
    )


@dataclass(frozen=True)
class Confirmation:
    subscription: Subscription
    list: MailingList
    newly_confirmed: bool


def confirm(
    session: Session, subscription_id: int, requested_at: datetime, *, ip: str | None = None
) -> Confirmation:
    """Confirm the pending request identified by a confirmation link.

    The link names the request by its time, so a link from an older request cannot re-subscribe someone
    who has since unsubscribed. Confirming twice is harmless.
    """
    sub = session.scalars(
        select(Subscription)
        .where(Subscription.id == subscription_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).one_or_none()
    if (
        sub is None
        or sub.requested_at is None
        or abs((sub.requested_at - requested_at).total_seconds()) > 0.001
    ):
        raise NotFound("this confirmation link is no longer valid", field="token")
    lst = session.get(MailingList, sub.list_id)
    assert lst is not None
    if sub.status == Status.SUBSCRIBED:
        return Confirmation(sub, lst, newly_confirmed=False)
    if sub.status != Status.PENDING:
        raise NotFound("this confirmation link is no longer valid", field="token")
    recipient = session.get(Recipient, sub.recipient_id)
    assert recipient is not None
    now = utcnow()
    sub.status = Status.SUBSCRIBED
    sub.subscribed_at = now
    sub.updated_at = now
    sub.unsubscribed_at = None
    sub.unsubscribe_reason = None
    sub.unsubscribe_source = None
    sub.consent_method = "double_opt_in"
    sub.consent_ip = ip
    sub.consent_at = now
    events.record(
        session,
        account_id=sub.account_id,
        type=EventType.SUBSCRIPTION_CONFIRMED,
        recipient=recipient,
        source=Source.RECIPIENT,
        list_id=sub.list_id,
        channel=sub.channel,
        extra={"method": "double_opt_in"},
    )
    return Confirmation(sub, lst, newly_confirmed=True)


def get_subscription(session: Session, account_id: int, subscription_id: int) -> Subscription:
    """The account's subscription; NotFound otherwise."""
    sub = session.get(Subscription, subscription_id)
    if sub is None or sub.account_id != account_id:
        raise NotFound(f"subscription {subscription_id} does not exist", field="subscription")
    return sub
