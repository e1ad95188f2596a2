"""The event feed: an account's audience events in order, for systems that prefer polling to webhooks.

The cursor is opaque to clients (it encodes the last event id they saw). Event ids come from a sequence,
and on PostgreSQL a transaction may commit a lower id after a higher one became visible; a reader that
moved past the higher id would never see the lower one. So on PostgreSQL the feed holds back events
newer than the oldest write transaction still open (with a one-second margin): a page never has a gap
that a later commit could fill. SQLite has a single writer, so ids are committed in order.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from missiva.audience.enums import EventType
from missiva.audience.models import AudienceEvent
from missiva.errors import InvalidInput
from missiva.events.enums import MESSAGE_EVENT_TYPES
from missiva.events.payload import list_infos, native_payload

_PREFIX = "ev1:"
_MARGIN = timedelta(seconds=1)
MAX_LIMIT = 1000


def encode_cursor(event_id: int) -> str:
    """The opaque cursor that resumes after `event_id`."""
    return base64.urlsafe_b64encode(f"{_PREFIX}{event_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    """The event id inside a cursor; InvalidInput naming `after` for anything we did not hand out."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        if not raw.startswith(_PREFIX):
            raise ValueError(raw)
        value = int(raw.removeprefix(_PREFIX))
        if value < 0:
            raise ValueError(raw)
        return value
    except (ValueError, UnicodeDecodeError, binascii.Error) as exc:
        raise InvalidInput("the cursor is not one this feed returned", field="after") from exc


@dataclass(frozen=True)
class FeedPage:
    items: list[dict[str, Any]]
    next_cursor: str
    has_more: bool


def check_types(types: Sequence[str]) -> list[str]:
    """The requested event types; InvalidInput naming `types` for an unknown one."""
    known = {t.value for t in EventType} | set(MESSAGE_EVENT_TYPES)
    out = [t.strip() for t in types if t.strip()]
    for value in out:
        if value not in known:
            raise InvalidInput(f"unknown event type {value!r}; known: {sorted(known)}", field="types")
    return out


def _pg_horizon(session: Session) -> datetime | None:
    """When the oldest other write transaction on this database began, if one is open."""
    return session.execute(
        text(
            "SELECT min(xact_start) FROM pg_stat_activity "
            "WHERE backend_xid IS NOT NULL AND pid <> pg_backend_pid() AND datname = current_database()"
        )
    ).scalar()


def read(
    session: Session,
    account_id: int,
    *,
    after: str | None = None,
    types: Sequence[str] = (),
    limit: int = 100,
) -> FeedPage:
    """Up to `limit` events of the account after the cursor, oldest first, in the native payload shape."""
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidInput(f"limit must be between 1 and {MAX_LIMIT}", field="limit")
    start = decode_cursor(after) if after else 0
    wanted = check_types(types)
    stmt = select(AudienceEvent).where(AudienceEvent.account_id == account_id, AudienceEvent.id > start)
    if wanted:
        stmt = stmt.where(AudienceEvent.type.in_(wanted))
    if session.get_bind().dialect.name == "postgresql":
        horizon = _pg_horizon(session)
        if horizon is not None:
            stmt = stmt.where(AudienceEvent.occurred_at < horizon - _MARGIN)
    events = list(session.scalars(stmt.order_by(AudienceEvent.id).limit(limit + 1)))
    page = events[:limit]
    lists = list_infos(session, (e.list_id for e in page))
    return FeedPage(
        items=[native_payload(e, lists) for e in page],
        next_cursor=encode_cursor(page[-1].id) if page else (after or encode_cursor(0)),
        has_more=len(events) > limit,
    )
