"""Transactional sends: one message (email or SMS) to one address now, through the same ledger and rules.

Each send is a mailing of kind `transactional` with a single ledger row, so VERP bounces, the
one-click link, hard-bounce handling and reports work exactly as for campaigns. The address becomes a
recipient of the account (not subscribed to anything) so it has an id the VERP address can carry.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from missiva.audience.enums import Status
from missiva.audience.identity import normalise_email
from missiva.audience.lists import get_list
from missiva.audience.models import MailingList, Recipient, Subscription
from missiva.audience.recipients import identity
from missiva.db import insert_ignore, utcnow
from missiva.delivery import mailings, suppression
from missiva.delivery.models import (
    LedgerEntry,
    LedgerState,
    Mailing,
    MailingKind,
    MailingStatus,
    SuppressedBecause,
)
from missiva.delivery.sms import content as sms_content
from missiva.delivery.sms import settings as sms_settings
from missiva.delivery.sms import transports as sms_transports
from missiva.delivery.sms.content import SmsTemplate
from missiva.errors import InvalidInput
from missiva.messages import service as messages
from missiva.messages.models import Message


def _recipient(session: Session, account_id: int, address: str, channel: str = "email") -> Recipient:
    now = utcnow()
    key = "mobile" if channel == "sms" else "email"
    insert_ignore(
        session,
        Recipient,
        {"account_id": account_id, key: address, "fields": {}, "created_at": now, "updated_at": now},
        ["account_id", key],
    )
    column = Recipient.mobile if channel == "sms" else Recipient.email
    return session.scalars(
        select(Recipient).where(Recipient.account_id == account_id, column == address)
    ).one()


def _sms_content(
    session: Session, account_id: int, values: dict[str, Any]
) -> tuple[dict[str, Any], int | None]:
    """The SMS snapshot: a stored SMS message, or `text` with a sender id (else the list's/account's)."""
    if values.get("message_id") is not None:
        message = messages.get(session, account_id, int(values["message_id"]))
        if message.channel != "sms":
            raise InvalidInput(f"message {message.id} is an email message", field="message_id")
        return sms_content.snapshot(session, message), message.list_id
    list_id = values.get("list_id")
    lst = get_list(session, account_id, int(list_id)) if list_id is not None else None
    if not values.get("text"):
        raise InvalidInput("give message_id, or the SMS text", field="text")
    draft = Message(
        account_id=account_id,
        list_id=lst.id if lst else None,
        text=values["text"],
        mode=values.get("mode") or "merge",
        sender_id=sms_settings.check_sender_id(values.get("sender_id")),
        opt_out=bool(values.get("opt_out")),
    )
    return sms_content.snapshot(session, draft), draft.list_id


def _content(session: Session, account_id: int, values: dict[str, Any]) -> tuple[dict[str, Any], int | None]:
    if values.get("message_id") is not None:
        message = messages.get(session, account_id, int(values["message_id"]))
        if message.channel != "email":
            raise InvalidInput(f"message {message.id} is an SMS message", field="message_id")
        lst = session.get(MailingList, message.list_id)
        return messages.content_of(message, lst), message.list_id
    list_id = values.get("list_id")
    lst = get_list(session, account_id, int(list_id)) if list_id is not None else None
    if not values.get("subject") or not (values.get("html") or values.get("text")):
        raise InvalidInput("give message_id, or subject with html and/or text", field="subject")
    content = {
        "subject": values["subject"],
        "html": values.get("html"),
        "text": values.get("text"),
        "from_name": values.get("from_name") or (lst.sender_name if lst else ""),
        "from_email": values.get("from_email") or (lst.sender_email if lst else ""),
        "reply_to": values.get("reply_to"),
        "preheader": values.get("preheader"),
        "mode": values.get("mode") or "merge",
        "attachments": messages.check_attachments(values.get("attachments")),
    }
    return content, lst.id if lst else None


def send(
    session: Session, account_id: int, values: dict[str, Any], *, kind: str = MailingKind.TRANSACTIONAL
) -> tuple[Mailing, LedgerEntry]:
    """Queue one message to `values["to"]`; the mailing and its ledger row (suppressed or queued).

    Suppression: the account's suppression list always; with a list, unsubscribed or pending on it too.
    """
    channel = values.get("channel")
    if channel is None and values.get("message_id") is not None:
        channel = messages.get(session, account_id, int(values["message_id"])).channel
    channel = channel or "email"
    fields = messages.field_map(session, account_id)
    entry = None
    if channel == "sms":
        address = identity(session, account_id, None, str(values.get("to") or "")).mobile or ""
        content, list_id = _sms_content(session, account_id, values)
        SmsTemplate(content, fields)  # template errors now, not in the sender
        sms_transports.require(session, account_id)
    elif channel == "email":
        address = normalise_email(str(values.get("to") or ""))
        content, list_id = _content(session, account_id, values)
        messages.message_content(content)
        messages.compile_snapshot(content, fields)  # template errors now, not in the sender
        entry = suppression.find(session, account_id, address)
    else:
        raise InvalidInput("channel must be 'email' or 'sms'", field="channel")
    recipient = _recipient(session, account_id, address, channel)
    reason: str | None = None
    if list_id is not None:
        status = session.scalar(
            select(Subscription.status).where(
                Subscription.recipient_id == recipient.id,
                Subscription.list_id == list_id,
                Subscription.channel == channel,
            )
        )
        if status == Status.UNSUBSCRIBED:
            reason = SuppressedBecause.UNSUBSCRIBED
        elif status == Status.PENDING:
            reason = SuppressedBecause.PENDING
    if reason is None and entry is not None:
        reason = entry.reason
    now = utcnow()
    mailing = Mailing(
        account_id=account_id,
        list_id=list_id,
        message_id=values.get("message_id"),
        kind=kind,
        channel=channel,
        name=f"{kind} to {address}"[:200],
        status=MailingStatus.FINISHED if reason else MailingStatus.RUNNING,
        audience={"recipients": [address]},
        content=content,
        resolved=True,
        resolved_upto=recipient.id,
        audience_size=1,
        queued=0 if reason else 1,
        suppressed=1 if reason else 0,
        suppressed_by_reason={reason: 1} if reason else {},
        throttle_state={},
        started_at=now,
        finished_at=now if reason else None,
    )
    session.add(mailing)
    session.flush()
    row = LedgerEntry(
        mailing_id=mailing.id,
        account_id=account_id,
        recipient_id=recipient.id,
        channel=channel,
        address=address,
        state=LedgerState.SUPPRESSED if reason else LedgerState.QUEUED,
        reason=reason,
        attempts=0,
    )
    session.add(row)
    session.flush()
    if not reason:
        mailings.queue_sender(session, mailing.id)
    return mailing, row


def status(session: Session, account_id: int, mailing_id: int) -> tuple[Mailing, LedgerEntry]:
    """A transactional send and its ledger row."""
    mailing = mailings.get(session, account_id, mailing_id)
    if mailing.kind == MailingKind.CAMPAIGN:
        raise InvalidInput(f"mailing {mailing_id} is a campaign, not a single send", field="id")
    row = session.scalars(select(LedgerEntry).where(LedgerEntry.mailing_id == mailing.id)).one()
    return mailing, row
