"""Date windows of the unsubscriber export, and the marks that make "since the last export" work."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import select
from sqlalchemy.orm import Session

from missiva.db import utcnow
from missiva.errors import InvalidInput
from missiva.sync.models import ExportMark


class Window(StrEnum):
    ALL = "all"
    PREVIOUS_DAY = "previous_day"
    SINCE_LAST = "since_last"
    RANGE = "range"


@dataclass(frozen=True)
class Span:
    """[start, end) in UTC; `start` None means from the beginning."""

    start: datetime | None
    end: datetime


def zone(name: str) -> ZoneInfo:
    """The IANA time zone `name`; InvalidInput when unknown."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidInput(f"unknown time zone {name!r}", field="timezone") from None


def resolve(
    session: Session,
    account_id: int,
    window: Window,
    *,
    timezone: str = "UTC",
    since: datetime | None = None,
    until: datetime | None = None,
    stream: str = "default",
    now: datetime | None = None,
) -> Span:
    """The UTC span a window stands for at `now`.

    previous_day is the calendar day before today in `timezone` (midnight to midnight, so a day of a
    daylight-saving change has 23 or 25 hours); since_last starts where the last export of `stream`
    ended (from the beginning if there was none) and ends now.
    """
    now = now or utcnow()
    if window is Window.ALL:
        return Span(None, now)
    if window is Window.PREVIOUS_DAY:
        tz = zone(timezone)
        today = now.astimezone(tz).date()
        start = datetime.combine(today - timedelta(days=1), time(0), tzinfo=tz)
        end = datetime.combine(today, time(0), tzinfo=tz)
        return Span(start.astimezone(now.tzinfo), end.astimezone(now.tzinfo))
    if window is Window.SINCE_LAST:
        last = session.scalar(
            select(ExportMark.until)
            .where(ExportMark.account_id == account_id, ExportMark.stream == stream)
            .order_by(ExportMark.until.desc())
            .limit(1)
        )
        return Span(last, now)
    if since is None and until is None:
        raise InvalidInput("a range needs since and/or until", field="since")
    for name, value in (("since", since), ("until", until)):
        if value is not None and value.tzinfo is None:
            raise InvalidInput(f"{name} needs a time zone offset", field=name)
    if since is not None and until is not None and since >= until:
        raise InvalidInput("since must be before until", field="since")
    return Span(since, until or now)


def record_mark(session: Session, account_id: int, stream: str, span: Span, rows: int) -> None:
    """Remember that `stream` exported `span`, so its next since_last export starts at its end."""
    session.add(
        ExportMark(account_id=account_id, stream=stream[:100], since=span.start, until=span.end, rows=rows)
    )
