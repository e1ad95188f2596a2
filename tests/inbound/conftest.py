"""Fixtures for inbound processing: accounts with a list, subscribers and a mailing already sent to them."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from sqlalchemy import insert, select

from missiva import keys, runtime
from missiva.audience import lists
from missiva.audience.models import AudienceEvent, Recipient, Subscription
from missiva.config import Settings
from missiva.db import Database, utcnow
from missiva.delivery.models import LedgerEntry, LedgerState, Mailing, MailingStatus
from missiva.inbound import verp
from tests.conftest import make_account

# The sending tests' SMTP sink, sending configuration and shop, for the end-to-end tests.
from tests.delivery.conftest import _sink_server, sending, shop, sink  # noqa: F401

BOUNCE_DOMAIN = "bounces.example.com"


@dataclass
class Sent:
    """An account, its list, and one mailing delivered (`sent`) to every address."""

    account_id: int
    list_id: int
    mailing_id: int
    recipients: dict[str, int] = field(default_factory=dict)

    def verp(self, address: str, settings: Settings) -> str:
        """The return path the sender put on the message to `address`."""
        return verp.encode(
            self.mailing_id,
            self.recipients[address],
            local="bounces",
            domain=BOUNCE_DOMAIN,
            secret=keys.derived_secret("verp", settings.secret_key),
        )


@pytest.fixture
def inbound_settings(settings: Settings) -> Iterator[Settings]:
    """The test's settings with the bounce domain the sender and the receiver share."""
    current = dataclasses.replace(settings, bounce_domain=BOUNCE_DOMAIN)
    runtime.configure(current)
    yield current


def seed_account(db: Database, name: str = "Shop") -> tuple[int, int]:
    """A new account and list: (account id, list id)."""
    account_id = make_account(db, name)["id"]
    with db.session() as session:
        lists.ensure_default_fields(session, account_id)
        lst = lists.create_list(session, account_id, "News", sender_email="news@shop.example")
        return account_id, lst.id


def seed_sent(db: Database, account_id: int, list_id: int, emails: list[str]) -> Sent:
    """Subscribed recipients (written in bulk) and a finished mailing whose every ledger row is `sent`."""
    now = utcnow()
    with db.session() as session:
        known = session.execute(
            select(Recipient.email, Recipient.id).where(
                Recipient.account_id == account_id, Recipient.email.in_(emails)
            )
        )
        ids = {email: rid for email, rid in known}
        rows = [
            {"account_id": account_id, "email": e, "fields": {}, "created_at": now, "updated_at": now}
            for e in emails
            if e not in ids
        ]
        if rows:  # new ones are subscribed; known ones keep their subscription
            inserted = {
                email: rid
                for email, rid in session.execute(
                    insert(Recipient).returning(Recipient.email, Recipient.id), rows
                )
            }
            session.execute(
                insert(Subscription),
                [
                    {
                        "account_id": account_id,
                        "recipient_id": rid,
                        "list_id": list_id,
                        "channel": "email",
                        "status": "subscribed",
                        "created_at": now,
                        "updated_at": now,
                        "subscribed_at": now,
                    }
                    for rid in inserted.values()
                ],
            )
            ids.update(inserted)
        mailing = Mailing(
            account_id=account_id,
            list_id=list_id,
            name="Sent",
            status=MailingStatus.FINISHED,
            resolved=True,
            audience_size=len(emails),
            sent=len(emails),
            started_at=now,
            finished_at=now,
        )
        session.add(mailing)
        session.flush()
        for email, rid in ids.items():
            session.add(
                LedgerEntry(
                    mailing_id=mailing.id,
                    account_id=account_id,
                    recipient_id=rid,
                    address=email,
                    state=LedgerState.SENT,
                    attempts=1,
                    reply_code=250,
                    sent_at=now,
                )
            )
        return Sent(account_id, list_id, mailing.id, ids)


def subscription_of(db: Database, account_id: int, email: str) -> tuple[str, str | None]:
    """(status, unsubscribe reason) of the address's email subscription in the account."""
    with db.session() as session:
        row = session.execute(
            select(Subscription.status, Subscription.unsubscribe_reason)
            .join(Recipient, Recipient.id == Subscription.recipient_id)
            .where(Recipient.account_id == account_id, Recipient.email == email)
        ).one()
        return row.status, row.unsubscribe_reason


def unsubscribe_events(db: Database, account_id: int) -> dict[str, tuple[str, int | None]]:
    """email -> (reason, mailing id) of the account's subscription.unsubscribed events."""
    with db.session() as session:
        events = session.scalars(
            select(AudienceEvent).where(
                AudienceEvent.account_id == account_id, AudienceEvent.type == "subscription.unsubscribed"
            )
        ).all()
        return {e.data["email"]: (e.reason, e.mailing_id) for e in events}
