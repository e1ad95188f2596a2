"""The outbox: one delivery row per matching endpoint, written in the audience change's own transaction.

A change that commits has its deliveries committed with it; one that rolls back leaves none. After the
commit the dispatcher is nudged (`add_kicker`) so events leave within milliseconds, while the periodic
dispatcher run catches anything a lost nudge left behind.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, insert, select
from sqlalchemy.orm import Session

from missiva.audience.models import AudienceEvent
from missiva.db import on_commit, utcnow
from missiva.events import mailup_format
from missiva.events.enums import MESSAGE_EVENT_TYPES, DeliveryStatus, Format
from missiva.events.models import WebhookDelivery, WebhookEndpoint

_kickers: list[Callable[[], None]] = []
_KICK_KEY = "missiva.events.kick"
_CACHE_KEY = "missiva.events.endpoints"


def add_kicker(fn: Callable[[], None]) -> None:
    """Call `fn()` after each commit that queued deliveries (the worker registers its dispatch task)."""
    if fn not in _kickers:
        _kickers.append(fn)


def remove_kicker(fn: Callable[[], None]) -> None:
    """Stop calling `fn`."""
    if fn in _kickers:
        _kickers.remove(fn)


def request_dispatch(session: Session) -> None:
    """Nudge the dispatcher once the current transaction commits (at most once per transaction)."""
    tx = session.get_transaction()
    if session.info.get(_KICK_KEY) is tx:
        return
    session.info[_KICK_KEY] = tx
    on_commit(session, _kick)


def _kick() -> None:
    for fn in list(_kickers):
        fn()


@dataclass(frozen=True)
class Target:
    """What the outbox needs to know of an active endpoint."""

    id: int
    format: str
    event_types: tuple[str, ...]
    sources: tuple[str, ...]
    list_id: int | None


_ENDPOINTS = WebhookEndpoint.__table__
_ACTIVE_ENDPOINTS = select(
    _ENDPOINTS.c.id,
    _ENDPOINTS.c.format,
    _ENDPOINTS.c.event_types,
    _ENDPOINTS.c.sources,
    _ENDPOINTS.c.list_id,
).where(_ENDPOINTS.c.account_id == bindparam("account_id"), _ENDPOINTS.c.active.is_(True))
_INSERT_DELIVERY = insert(WebhookDelivery.__table__)


def targets(session: Session, account_id: int) -> list[Target]:
    """The account's active endpoints, looked up once per transaction."""
    # Cached for the transaction: a batch of 1,000 subscribes looks the endpoints up once.
    tx = session.get_transaction()
    cached = session.info.get(_CACHE_KEY)
    if cached is None or cached[0] is not tx:
        cached = (tx, {})
        session.info[_CACHE_KEY] = cached
    by_account: dict[int, list[Target]] = cached[1]
    if account_id not in by_account:
        # Core on the session's connection: this runs for every audience change, so skip the ORM.
        rows = session.connection().execute(_ACTIVE_ENDPOINTS, {"account_id": account_id})
        by_account[account_id] = [
            Target(r.id, r.format, tuple(r.event_types or ()), tuple(r.sources or ()), r.list_id)
            for r in rows
        ]
    return by_account[account_id]


def forget_endpoints(session: Session) -> None:
    """Drop the transaction's endpoint cache (after an endpoint is created or changed in it)."""
    session.info.pop(_CACHE_KEY, None)


def event_lists(event: AudienceEvent) -> set[int]:
    """The lists an event concerns: its own, else every list the recipient is (or was) on."""
    if event.list_id is not None:
        return {event.list_id}
    data: dict[str, Any] = event.data or {}
    lists = {s["list_id"] for s in data.get("subscriptions") or []}
    lists.update(data.get("lists") or [])
    return lists


def matches(target: Target, event: AudienceEvent) -> bool:
    """Whether the endpoint's type, source and list filters all let `event` through."""
    if target.event_types and event.type not in target.event_types:
        return False
    if not target.event_types and event.type in MESSAGE_EVENT_TYPES:
        return False  # opens and clicks only go to endpoints that ask for them
    if target.sources and event.source not in target.sources:
        return False
    return target.list_id is None or target.list_id in event_lists(event)


def parts_for(target: Target, event: AudienceEvent) -> int:
    """How many requests `event` needs at this endpoint (MailUp: 0, 1 or several; native: 1)."""
    if target.format == Format.MAILUP:
        return len(mailup_format.calls(event, target.list_id))
    return 1


def _rows(targets: list[Target], event: AudienceEvent, now: Any) -> list[dict[str, Any]]:
    """Outbox rows of one event for the endpoints among `targets` that want it."""
    rows = []
    for target in targets:
        if not matches(target, event):
            continue
        for part in range(parts_for(target, event)):
            rows.append(
                {
                    "account_id": event.account_id,
                    "endpoint_id": target.id,
                    "event_id": event.id,
                    "part": part,
                    "order_key": event.recipient_id or 0,
                    "status": DeliveryStatus.PENDING.value,
                    "attempts": 0,
                    "next_attempt_at": now,
                    "window_start": now,
                    "created_at": now,
                }
            )
    return rows


def enqueue_many(session: Session, events: Sequence[AudienceEvent]) -> int:
    """Queue `events` for every matching active endpoint, in one write; the number of rows written."""
    now = utcnow()
    rows: list[dict[str, Any]] = []
    targets_of: dict[int, list[Target]] = {}
    for event in events:
        found = targets_of.get(event.account_id)
        if found is None:
            found = targets_of[event.account_id] = targets(session, event.account_id)
        if found:
            rows.extend(_rows(found, event, now))
    if rows:
        session.connection().execute(_INSERT_DELIVERY, rows)
        request_dispatch(session)
    return len(rows)


def enqueue(session: Session, event: AudienceEvent) -> int:
    """Queue `event` for every matching active endpoint of its account; the number of rows written."""
    return enqueue_many(session, [event])


def on_audience_events(session: Session, events: Sequence[AudienceEvent]) -> None:
    """The bulk listener (imports): queue a whole batch's deliveries in one statement."""
    enqueue_many(session, events)


def on_audience_event(session: Session, event: AudienceEvent) -> None:
    """The audience listener: queue the event's webhook deliveries in the same transaction."""
    enqueue(session, event)
