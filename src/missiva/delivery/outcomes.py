"""What happened to sent messages (delivered, bounced, complained, opened, clicked), for whoever listens.

The sending, inbound and tracking code finds these things out; the webhook outbox turns them into
events. Those layers sit below the events domain, so they do not call it: the worker installs a
publisher here (`set_publisher`), and each producer hands over its events in batches, inside the
transaction that records the outcome, so an event exists exactly when its outcome is committed.

`message.delivered` is one event per accepted message, as many as the mailing has recipients; a
producer asks `wanted` first and builds those only when an endpoint of the account subscribed to them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

MESSAGE_DELIVERED = "message.delivered"
MESSAGE_BOUNCED = "message.bounced"
MESSAGE_COMPLAINED = "message.complained"
MESSAGE_OPENED = "message.opened"
MESSAGE_CLICKED = "message.clicked"

MESSAGE_EVENT_TYPES = (
    MESSAGE_DELIVERED,
    MESSAGE_BOUNCED,
    MESSAGE_COMPLAINED,
    MESSAGE_OPENED,
    MESSAGE_CLICKED,
)


@dataclass(frozen=True)
class MessageEvent:
    """One outcome of one message (recipient None in tracking's privacy mode or when unknown)."""

    type: str
    account_id: int
    mailing_id: int | None
    recipient_id: int | None
    occurred_at: datetime
    data: dict[str, Any] = field(default_factory=dict)
    channel: str = "email"


Publisher = Callable[[Session, list[MessageEvent]], None]
Wanted = Callable[[Session, int, str], bool]
_publisher: Publisher | None = None
_wanted: Wanted | None = None


def set_publisher(publisher: Publisher | None, wanted: Wanted | None = None) -> None:
    """Where batches of message events go (None: nowhere), and how to ask whether a type is wanted."""
    global _publisher, _wanted
    _publisher = publisher
    _wanted = wanted


def wanted(session: Session, account_id: int, event_type: str) -> bool:
    """Whether events of `event_type` for this account would go anywhere (cheap: cached per transaction)."""
    if _publisher is None:
        return False
    return True if _wanted is None else _wanted(session, account_id, event_type)


def publish(session: Session, events: list[MessageEvent]) -> None:
    """Hand `events` to the publisher in the caller's transaction (nothing happens without one)."""
    if events and _publisher is not None:
        _publisher(session, events)
