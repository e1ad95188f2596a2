"""Inbound SMS: log every reply, and turn a STOP-style reply into unsubscribes from the SMS channel.

A reply does not say which list it answers, so a STOP unsubscribes the number from every list of the
account it is subscribed to by SMS (reason ``sms_stop``, source ``recipient``), each with its audience
event. Email subscriptions of the same person are untouched. The keywords are the account's
(:func:`settings.stop_keywords`).
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from missiva.audience import subscriptions
from missiva.audience.enums import Channel, Reason, Source, Status
from missiva.audience.identity import normalise_mobile
from missiva.audience.models import Recipient, Subscription
from missiva.delivery.sms import settings
from missiva.delivery.sms.events import InboundSms
from missiva.delivery.sms.keywords import is_stop
from missiva.delivery.sms.models import SmsInbound
from missiva.errors import InvalidInput
from missiva.tenancy.models import Account


def sender_number(session: Session, account_id: int, source: str) -> str | None:
    """The E.164 form of an inbound sender: SMSCs write international numbers without "+"."""
    digits = source.strip()
    country = session.scalar(select(Account.default_country).where(Account.id == account_id))
    candidates = [digits] if digits.startswith(("+", "00")) else ["+" + digits, digits]
    for candidate in candidates:
        try:
            return normalise_mobile(candidate, country)
        except InvalidInput:
            continue
    return None


def handle(session: Session, account_id: int, message: InboundSms) -> SmsInbound:
    """Record an inbound message; unsubscribe its sender from SMS when it is a STOP reply."""
    number = sender_number(session, account_id, message.source)
    recipient = None
    if number is not None:
        recipient = session.scalar(
            select(Recipient).where(Recipient.account_id == account_id, Recipient.mobile == number)
        )
    action = "none"
    unsubscribed: list[int] = []
    if is_stop(message.text, settings.stop_keywords(session, account_id)):
        action = "stop" if recipient is not None else "unknown_number"
        if recipient is not None:
            lists = session.scalars(
                select(Subscription.list_id).where(
                    Subscription.recipient_id == recipient.id,
                    Subscription.channel == Channel.SMS,
                    Subscription.status == Status.SUBSCRIBED,
                )
            ).all()
            for list_id in lists:
                subscriptions.unsubscribe(
                    session,
                    account_id,
                    list_id,
                    mobile=number,
                    channel=Channel.SMS,
                    reason=Reason.SMS_STOP,
                    source=Source.RECIPIENT,
                )
                unsubscribed.append(list_id)
    row = SmsInbound(
        account_id=account_id,
        source=(number or message.source)[:20],
        dest=message.dest[:20],
        text=message.text,
        transport=message.transport[:40],
        recipient_id=recipient.id if recipient is not None else None,
        action=action,
        unsubscribed_lists=unsubscribed,
    )
    session.add(row)
    session.flush()
    return row
