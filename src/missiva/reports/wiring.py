"""Connects the reports domain to the others: audience events, the send ledger, webhooks."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime

from sqlalchemy import BigInteger, any_, bindparam, select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session

from missiva.delivery.models import LedgerEntry
from missiva.reports import counters, unsubscribes, webhooks


def ledger_delivery_times(session: Session, pairs: set[tuple[int, int]]) -> dict[tuple[int, int], datetime]:
    """When each (mailing, recipient) was accepted by the relay, from the send ledger's unique key."""
    if not pairs:
        return {}
    by_mailing: dict[int, list[int]] = defaultdict(list)
    for mailing_id, recipient_id in sorted(pairs):
        by_mailing[mailing_id].append(recipient_id)
    out: dict[tuple[int, int], datetime] = {}
    postgres = session.get_bind().dialect.name == "postgresql"
    for mailing_id, recipients in by_mailing.items():
        # One array parameter on PostgreSQL (the unique (mailing, recipient, channel) index answers).
        wanted = (
            LedgerEntry.recipient_id == any_(bindparam("ids", recipients, type_=ARRAY(BigInteger)))
            if postgres
            else LedgerEntry.recipient_id.in_(recipients)
        )
        rows = session.execute(
            select(LedgerEntry.recipient_id, LedgerEntry.sent_at).where(
                LedgerEntry.mailing_id == mailing_id, wanted, LedgerEntry.sent_at.is_not(None)
            )
        )
        out.update(((mailing_id, r), at) for r, at in rows)
    return out


def install() -> None:
    """Count unsubscribes per mailing, detect scanners from delivery times, publish webhook batches."""
    unsubscribes.install()
    counters.set_delivery_times(ledger_delivery_times)
    webhooks.install()
