"""RFC 8058 one-click unsubscribe: the List-Unsubscribe URL's POST unsubscribes with no further step.

As MailUp does, the address is unsubscribed from the mailing's list (reason `list_unsubscribe`, with
its audience event) and put on the account's suppression list.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from missiva.audience import subscriptions
from missiva.audience.enums import Reason, Source
from missiva.audience.models import MailingList, Recipient
from missiva.delivery import suppression, unsubscribe_tokens
from missiva.delivery.models import Mailing, SuppressionReason
from missiva.errors import DomainError


@dataclass(frozen=True)
class Target:
    """Who a genuine token points at."""

    mailing: Mailing
    recipient: Recipient
    list: MailingList | None


def target(session: Session, token: str) -> Target | None:
    """The mailing and recipient of a genuine token; None when forged, altered or stale."""
    ids = unsubscribe_tokens.read(token)
    if ids is None:
        return None
    mailing = session.get(Mailing, ids[0])
    recipient = session.get(Recipient, ids[1])
    if (
        mailing is None
        or recipient is None
        or recipient.account_id != mailing.account_id
        or not recipient.email
    ):
        return None
    lst = session.get(MailingList, mailing.list_id) if mailing.list_id else None
    return Target(mailing, recipient, lst)


def unsubscribe(session: Session, found: Target) -> None:
    """Unsubscribe from the mailing's list and suppress the address (idempotent)."""
    mailing, recipient = found.mailing, found.recipient
    if found.list is not None:
        try:
            with session.begin_nested():
                subscriptions.unsubscribe(
                    session,
                    mailing.account_id,
                    found.list.id,
                    email=recipient.email,
                    channel="email",
                    reason=Reason.LIST_UNSUBSCRIBE,
                    source=Source.RECIPIENT,
                    mailing_id=mailing.id,
                )
        except DomainError:
            pass  # already out: a second click changes nothing
    suppression.add(
        session,
        mailing.account_id,
        recipient.email or "",
        reason=SuppressionReason.LIST_UNSUBSCRIBE,
        source=Source.RECIPIENT,
        mailing_id=mailing.id,
    )
