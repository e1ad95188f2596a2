"""Connects the reports domain to the others: audience events, the send ledger, webhooks."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, tuple_
from sqlalchemy.orm import Session

from missiva.delivery.models import LedgerEntry
from missiva.reports import counters, unsubscribes, webhooks


def ledger_delivery_times(session: Session, pairs: set[tuple[int, int]]) -> dict[tuple[int, int], datetime]:
    """When each (mailing, recipient) was accepted by the relay, from the send ledger's unique key."""
    if not pairs:
        return {}
    rows = session.execute(
        select(LedgerEntry.mailing_id, LedgerEntry.recipient_id, LedgerEntry.sent_at).where(
            tuple_(LedgerEntry.mailing_id, LedgerEntry.recipient_id).in_(sorted(pairs)),
            LedgerEntry.sent_at.is_not(None),
        )
    )
    return {(m, r): at for m, r, at in rows}


def install() -> None:
    """Count unsubscribes per mailing, detect scanners from delivery times, publish webhook batches."""
    unsubscribes.install()
    counters.set_delivery_times(ledger_delivery_times)
    webhooks.install()
