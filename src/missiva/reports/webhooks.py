"""``message.opened`` / ``message.clicked`` events for the webhook system, one batch per roll-up.

Opens and clicks are the highest-volume events there are, so they leave in batches: each roll-up hands
the people's opens and clicks it just counted (never proxy prefetches or scanner clicks) to the
publisher in one call, inside the roll-up's transaction, so an event is published exactly when it is
counted. With no publisher installed (the webhook outbox is not part of this build), nothing is sent.

The webhook outbox hooks in with `set_publisher`: it receives `MessageEvent` records shaped like
audience events (type, account, recipient, mailing, time, data) to write as outbox rows.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select, tuple_
from sqlalchemy.orm import Session

from missiva.reports import counters
from missiva.reports.models import EventKind, TrackedLink

MESSAGE_OPENED = "message.opened"
MESSAGE_CLICKED = "message.clicked"


@dataclass(frozen=True)
class MessageEvent:
    """One webhook-worthy open or click (recipient None in privacy mode)."""

    type: str
    account_id: int
    mailing_id: int
    recipient_id: int | None
    occurred_at: datetime
    data: dict[str, Any] = field(default_factory=dict)


Publisher = Callable[[Session, list[MessageEvent]], None]
_publisher: Publisher | None = None


def set_publisher(publisher: Publisher | None) -> None:
    """Where batches of message events go (None: nowhere)."""
    global _publisher
    _publisher = publisher


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
    if _publisher is None:
        return
    found = message_events(session, batch)
    if found:
        _publisher(session, found)


def install() -> None:
    """Publish each roll-up's batch (idempotent)."""
    counters.on_counted(_publish)
