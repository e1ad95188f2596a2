"""``message.opened`` / ``message.clicked`` events for the webhook system, one batch per roll-up.

Opens and clicks are the highest-volume events there are, so they leave in batches: each roll-up hands
the people's opens and clicks it just counted (never proxy prefetches or scanner clicks) to the
publisher in one call, inside the roll-up's transaction, so an event is published exactly when it is
counted. They go through `delivery.outcomes`, where the webhook outbox installs its publisher.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, tuple_
from sqlalchemy.orm import Session

from missiva.delivery import outcomes
from missiva.delivery.outcomes import MESSAGE_CLICKED, MESSAGE_OPENED, MessageEvent, set_publisher
from missiva.reports import counters
from missiva.reports.models import EventKind, TrackedLink

__all__ = ["MESSAGE_CLICKED", "MESSAGE_OPENED", "MessageEvent", "install", "message_events", "set_publisher"]


def message_events(session: Session, batch: list[counters.CountedEvent]) -> list[MessageEvent]:
    """The people's opens and clicks of a counted batch as webhook events (click data has the URL)."""
    human = [e for e in batch if e.human]
    links = {(e.mailing_id, e.link) for e in human if e.kind == EventKind.CLICK}
    urls: dict[tuple[int, int], str] = {}
    if links:
        rows = session.execute(
            select(TrackedLink.mailing_id, TrackedLink.link, TrackedLink.url).where(
                tuple_(TrackedLink.mailing_id, TrackedLink.link).in_(sorted(links))
            )
        )
        urls = {(m, link): url for m, link, url in rows}
    out = []
    for e in human:
        data: dict[str, Any] = {"mailing_id": e.mailing_id}
        if e.kind == EventKind.CLICK:
            data["url"] = urls.get((e.mailing_id, e.link or 0))
            data["link"] = e.link
        kind = MESSAGE_CLICKED if e.kind == EventKind.CLICK else MESSAGE_OPENED
        out.append(MessageEvent(kind, e.account_id, e.mailing_id, e.recipient_id, e.occurred_at, data))
    return out


def _publish(session: Session, batch: list[counters.CountedEvent]) -> None:
    outcomes.publish(session, message_events(session, batch))


def install() -> None:
    """Publish each roll-up's batch (idempotent)."""
    counters.on_counted(_publish)
