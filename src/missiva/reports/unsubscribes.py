"""Counting the unsubscribes a mailing caused, as they happen, by reason.

An audience listener sees every ``subscription.unsubscribed`` event that names a mailing (one-click
List-Unsubscribe, the unsubscribe page, hard bounces, complaints) and adds one to the mailing's
``unsub:<reason>`` counter in the same transaction, so a report never searches the event log.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from missiva.audience import events
from missiva.audience.enums import EventType
from missiva.audience.models import AudienceEvent
from missiva.reports.counters import add
from missiva.reports.models import UNSUBSCRIBED_PREFIX


def _count(session: Session, event: AudienceEvent) -> None:
    if event.type != EventType.SUBSCRIPTION_UNSUBSCRIBED or event.mailing_id is None:
        return
    add(session, {(event.mailing_id, f"{UNSUBSCRIBED_PREFIX}{event.reason or 'unknown'}", 0): 1})


def install() -> None:
    """Start counting (idempotent)."""
    events.add_listener(_count)
