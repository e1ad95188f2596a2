"""Reports as CSV: mailing reports one row per mailing, and a mailing's raw tracking events streamed.

The event stream reads keyset pages on the (mailing, id) index, each page in its own short session, so
a mailing with millions of events streams in constant memory without holding a transaction open.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from typing import Any

from sqlalchemy import select

from missiva.db import Database
from missiva.reports.models import TrackedLink, TrackingEvent
from missiva.reports.service import time_text

PAGE = 5000

MAILING_COLUMNS = (
    ("mailing_id", ("mailing_id",)),
    ("name", ("name",)),
    ("status", ("status",)),
    ("started_at", ("started_at",)),
    ("audience", ("audience",)),
    ("suppressed", ("suppressed",)),
    ("sent", ("sent",)),
    ("delivered", ("delivered",)),
    ("hard_bounces", ("hard_bounces",)),
    ("soft_bounces", ("soft_bounces",)),
    ("failed", ("failed",)),
    ("uncertain", ("uncertain",)),
    ("complaints", ("complaints",)),
    ("unsubscribes", ("unsubscribes",)),
    ("opens", ("opens", "total")),
    ("unique_opens", ("opens", "unique")),
    ("proxy_opens", ("opens", "proxy")),
    ("bot_opens", ("opens", "bot")),
    ("clicks", ("clicks", "total")),
    ("unique_clicks", ("clicks", "unique")),
    ("bot_clicks", ("clicks", "bot")),
    ("delivery_rate", ("rates", "delivery")),
    ("bounce_rate", ("rates", "bounce")),
    ("open_rate", ("rates", "open")),
    ("click_rate", ("rates", "click")),
    ("click_to_open_rate", ("rates", "click_to_open")),
    ("unsubscribe_rate", ("rates", "unsubscribe")),
    ("complaint_rate", ("rates", "complaint")),
)
EVENT_COLUMNS = (
    "event_id",
    "occurred_at",
    "kind",
    "recipient_id",
    "link",
    "url",
    "ua_class",
    "is_bot",
    "is_proxy",
)


def _cell(report: dict[str, Any], path: tuple[str, ...]) -> object:
    value: Any = report
    for key in path:
        value = value[key]
    if value is None:
        return ""
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value


def mailing_reports_csv(reports: list[dict[str, Any]]) -> str:
    """Mailing reports as CSV, one row per mailing (unique counts empty in privacy mode).

    Breakdowns (by URL, by hour, unsubscribes by reason) stay in the JSON report.
    """
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([name for name, _ in MAILING_COLUMNS])
    for report in reports:
        writer.writerow([_cell(report, path) for _, path in MAILING_COLUMNS])
    return out.getvalue()


def stream_events(db: Database, mailing_id: int) -> Iterator[str]:
    """The mailing's tracking events as CSV text chunks, oldest first (one chunk per page)."""
    with db.session() as session:
        urls = dict(
            session.execute(
                select(TrackedLink.link, TrackedLink.url).where(TrackedLink.mailing_id == mailing_id)
            ).all()
        )
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(EVENT_COLUMNS)
    yield buffer.getvalue()
    after = 0
    while True:
        with db.session() as session:
            page = session.scalars(
                select(TrackingEvent)
                .where(TrackingEvent.mailing_id == mailing_id, TrackingEvent.id > after)
                .order_by(TrackingEvent.id)
                .limit(PAGE)
            ).all()
        if not page:
            return
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\r\n")
        for e in page:
            writer.writerow(
                [
                    e.id,
                    time_text(e.occurred_at),
                    e.kind,
                    e.recipient_id if e.recipient_id is not None else "",
                    e.link if e.link is not None else "",
                    urls.get(e.link, "") if e.link is not None else "",
                    e.ua_class,
                    int(e.is_bot),
                    int(e.is_proxy),
                ]
            )
        yield buffer.getvalue()
        after = page[-1].id
        if len(page) < PAGE:
            return
