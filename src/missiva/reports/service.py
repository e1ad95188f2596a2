"""Reports: what happened to a mailing (and several side by side), and to one recipient.

A mailing report reads the mailing's own counters (kept by the send ledger's transactions) and the
tracking counters (kept by the roll-up and the unsubscribe listener): a few rows, whatever the size of
the mailing. The only ledger query is over its failed rows, to tell exhausted retries (soft bounces)
from permanent failures, and runs on the ledger's (mailing, state) index.

Before reading, pending tracking events are rolled up, so a report includes the click made a moment ago.

Definitions (also in docs/reports.md):
- sent: messages handed over with a final answer (delivered + hard bounces + failed + uncertain);
- delivered: accepted by the relay;
- soft bounces: rows still waiting for a retry after a 4xx, plus those whose retries ran out;
- opens, clicks: people only (proxy prefetches and scanners are reported apart); unique = recipients;
- rates: delivered/sent; bounces/sent; unique opens, clicks, unsubscribes, complaints per delivered;
  click-to-open = unique clicks / unique opens. In privacy mode there are no unique counts.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from missiva.audience.enums import EventType, Reason
from missiva.audience.identity import normalise_email
from missiva.audience.models import AudienceEvent, MailingList, Recipient, Subscription
from missiva.delivery.models import LedgerEntry, LedgerState, Mailing
from missiva.errors import InvalidInput, NotFound
from missiva.reports import counters
from missiva.reports.models import (
    UNSUBSCRIBED_PREFIX,
    EventKind,
    Metric,
    TrackedLink,
    TrackedMailing,
    TrackingEvent,
)

MAX_SIDE_BY_SIDE = 50
CATCH_UP_BATCHES = 20


def catch_up(session: Session) -> None:
    """Roll up pending tracking events (bounded), committing, so reports include the latest ones."""
    for _ in range(CATCH_UP_BATCHES):
        done = counters.roll_up(session)
        session.commit()
        if done < counters.BATCH:
            return


def _mailing(session: Session, account_id: int, mailing_id: int) -> Mailing:
    mailing = session.get(Mailing, mailing_id)
    if mailing is None or mailing.account_id != account_id:
        raise NotFound(f"mailing {mailing_id} not found", field="mailing_id")
    return mailing


def mailing_exists(session: Session, account_id: int, mailing_id: int) -> None:
    """`NotFound` unless the account has this mailing."""
    _mailing(session, account_id, mailing_id)


def _rate(part: int | None, whole: int | None) -> float | None:
    if part is None or not whole:
        return None
    return round(part / whole, 4)


def _exhausted_retries(session: Session, mailing_id: int) -> int:
    return int(
        session.scalar(
            select(func.count())
            .select_from(LedgerEntry)
            .where(
                LedgerEntry.mailing_id == mailing_id,
                LedgerEntry.state == LedgerState.FAILED,
                LedgerEntry.reason == "retries_exhausted",
            )
        )
        or 0
    )


def _by_hour(numbers: dict[tuple[str, int], int], metric: str) -> list[dict[str, int]]:
    return [{"hour": key, "count": value} for (name, key), value in sorted(numbers.items()) if name == metric]


def _build(
    session: Session,
    mailing: Mailing,
    numbers: dict[tuple[str, int], int],
    tracked: TrackedMailing | None,
    urls: list[str],
) -> dict[str, Any]:
    def n(metric: str, key: int = 0) -> int:
        return numbers.get((metric, key), 0)

    privacy = bool(tracked and tracked.privacy_mode)
    exhausted = _exhausted_retries(session, mailing.id) if mailing.failed else 0
    delivered = mailing.sent
    hard = mailing.hard_bounced
    soft = mailing.deferred + exhausted
    failed = mailing.failed - exhausted
    sent = delivered + hard + mailing.failed + mailing.uncertain
    unsubscribes = {
        name.removeprefix(UNSUBSCRIBED_PREFIX): value
        for (name, _key), value in sorted(numbers.items())
        if name.startswith(UNSUBSCRIBED_PREFIX)
    }
    complaints = unsubscribes.get(Reason.COMPLAINT.value, 0)
    opens_unique = None if privacy else n(Metric.OPENS_UNIQUE)
    clicks_unique = None if privacy else n(Metric.CLICKS_UNIQUE)
    unsubscribed = sum(unsubscribes.values())
    return {
        "mailing_id": mailing.id,
        "name": mailing.name,
        "kind": mailing.kind,
        "status": mailing.status,
        "list_id": mailing.list_id,
        "started_at": mailing.started_at,
        "finished_at": mailing.finished_at,
        "tracking": {
            "opens": bool(tracked and tracked.track_opens),
            "clicks": bool(tracked and tracked.track_clicks),
            "privacy_mode": privacy,
        },
        "audience": mailing.audience_size,
        "suppressed": mailing.suppressed,
        "suppressed_by_reason": dict(sorted((mailing.suppressed_by_reason or {}).items())),
        "queued": mailing.queued,
        "sent": sent,
        "delivered": delivered,
        "hard_bounces": hard,
        "soft_bounces": soft,
        "failed": failed,
        "uncertain": mailing.uncertain,
        "complaints": complaints,
        "unsubscribes": unsubscribed,
        "unsubscribes_by_reason": unsubscribes,
        "opens": {
            "total": n(Metric.OPENS),
            "unique": opens_unique,
            "proxy": n(Metric.OPENS_PROXY),
            "bot": n(Metric.OPENS_BOT),
            "by_hour": _by_hour(numbers, Metric.OPENS_BY_HOUR),
        },
        "clicks": {
            "total": n(Metric.CLICKS),
            "unique": clicks_unique,
            "bot": n(Metric.CLICKS_BOT),
            "by_url": [
                {
                    "link": index,
                    "url": url,
                    "total": n(Metric.LINK_CLICKS, index),
                    "unique": None if privacy else n(Metric.LINK_UNIQUE, index),
                }
                for index, url in enumerate(urls)
            ],
            "by_hour": _by_hour(numbers, Metric.CLICKS_BY_HOUR),
        },
        "rates": {
            "delivery": _rate(delivered, sent),
            "bounce": _rate(hard + soft, sent),
            "open": _rate(opens_unique, delivered),
            "click": _rate(clicks_unique, delivered),
            "click_to_open": _rate(clicks_unique, opens_unique),
            "unsubscribe": _rate(unsubscribed, delivered),
            "complaint": _rate(complaints, delivered),
        },
    }


def mailing_reports(session: Session, account_id: int, mailing_ids: list[int]) -> list[dict[str, Any]]:
    """Reports of several mailings of the account, in the order asked, to compare side by side."""
    if not mailing_ids:
        raise InvalidInput("name at least one mailing id", field="ids")
    if len(mailing_ids) > MAX_SIDE_BY_SIDE:
        raise InvalidInput(f"at most {MAX_SIDE_BY_SIDE} mailings side by side", field="ids")
    mailings = [_mailing(session, account_id, m) for m in mailing_ids]
    catch_up(session)
    numbers = counters.read(session, mailing_ids)
    tracked = {
        row.mailing_id: row
        for row in session.scalars(select(TrackedMailing).where(TrackedMailing.mailing_id.in_(mailing_ids)))
    }
    urls: dict[int, list[str]] = defaultdict(list)
    for row in session.scalars(
        select(TrackedLink).where(TrackedLink.mailing_id.in_(mailing_ids)).order_by(TrackedLink.link)
    ):
        urls[row.mailing_id].append(row.url)
    return [_build(session, m, numbers[m.id], tracked.get(m.id), urls[m.id]) for m in mailings]


def mailing_report(session: Session, account_id: int, mailing_id: int) -> dict[str, Any]:
    """The report of one mailing; `NotFound` for another account's or a missing mailing."""
    return mailing_reports(session, account_id, [mailing_id])[0]


def _recipient(session: Session, account_id: int, recipient_id: int | None, email: str | None) -> Recipient:
    if recipient_id is None and not email:
        raise InvalidInput("give a recipient id or an email address", field="email")
    if recipient_id is not None:
        found = session.get(Recipient, recipient_id)
    else:
        address = normalise_email(email or "")
        found = session.scalars(
            select(Recipient).where(Recipient.account_id == account_id, Recipient.email == address)
        ).one_or_none()
    if found is None or found.account_id != account_id:
        what = f"recipient {recipient_id}" if recipient_id is not None else f"recipient {email!r}"
        raise NotFound(f"{what} not found", field="recipient" if recipient_id is not None else "email")
    return found


def recipient_report(
    session: Session, account_id: int, *, recipient_id: int | None = None, email: str | None = None
) -> dict[str, Any]:
    """MailUp's ReportByUser: subscriptions, every mailing received with its outcome, opens and clicks."""
    person = _recipient(session, account_id, recipient_id, email)
    catch_up(session)
    subs = session.execute(
        select(Subscription, MailingList.name)
        .join(MailingList, MailingList.id == Subscription.list_id)
        .where(Subscription.recipient_id == person.id)
        .order_by(Subscription.list_id, Subscription.channel)
    ).all()
    rows = session.execute(
        select(LedgerEntry, Mailing.name, Mailing.list_id, Mailing.kind)
        .join(Mailing, Mailing.id == LedgerEntry.mailing_id)
        .where(LedgerEntry.recipient_id == person.id, Mailing.account_id == account_id)
        .order_by(LedgerEntry.mailing_id, LedgerEntry.channel)
    ).all()
    mailing_ids = sorted({row.LedgerEntry.mailing_id for row in rows})
    activity: dict[int, dict[str, Any]] = {
        m: {"opens": 0, "proxy_opens": 0, "clicks": 0, "bot_clicks": 0, "first_open_at": None, "links": {}}
        for m in mailing_ids
    }
    events = session.execute(
        select(TrackingEvent, TrackedLink.url)
        .outerjoin(
            TrackedLink,
            (TrackedLink.mailing_id == TrackingEvent.mailing_id) & (TrackedLink.link == TrackingEvent.link),
        )
        .where(TrackingEvent.recipient_id == person.id, TrackingEvent.account_id == account_id)
        .order_by(TrackingEvent.id)
    ).all()
    for event, url in events:
        seen = activity.setdefault(
            event.mailing_id,
            {"opens": 0, "proxy_opens": 0, "clicks": 0, "bot_clicks": 0, "first_open_at": None, "links": {}},
        )
        if event.kind == EventKind.OPEN:
            if event.is_bot:
                continue
            if event.is_proxy:
                seen["proxy_opens"] += 1
                continue
            seen["opens"] += 1
            seen["first_open_at"] = seen["first_open_at"] or event.occurred_at
        elif event.is_bot:
            seen["bot_clicks"] += 1
        else:
            seen["clicks"] += 1
            seen["links"][url] = seen["links"].get(url, 0) + 1
    unsubscribed = {
        (m, reason)
        for m, reason in session.execute(
            select(AudienceEvent.mailing_id, AudienceEvent.reason).where(
                AudienceEvent.recipient_id == person.id,
                AudienceEvent.account_id == account_id,
                AudienceEvent.type == EventType.SUBSCRIPTION_UNSUBSCRIBED,
                AudienceEvent.mailing_id.is_not(None),
            )
        )
    }
    reasons: dict[int, str] = {m: reason for m, reason in unsubscribed}
    mailings = []
    for row in rows:
        entry = row.LedgerEntry
        seen = activity[entry.mailing_id]
        mailings.append(
            {
                "mailing_id": entry.mailing_id,
                "name": row.name,
                "kind": row.kind,
                "list_id": row.list_id,
                "channel": entry.channel,
                "address": entry.address,
                "outcome": entry.state,
                "reason": entry.reason,
                "reply": (
                    {"code": entry.reply_code, "status": entry.reply_status, "text": entry.reply_text}
                    if entry.reply_code
                    else None
                ),
                "attempts": entry.attempts,
                "sent_at": entry.sent_at,
                "opens": seen["opens"],
                "proxy_opens": seen["proxy_opens"],
                "first_open_at": seen["first_open_at"],
                "clicks": seen["clicks"],
                "bot_clicks": seen["bot_clicks"],
                "clicked_links": [{"url": u, "clicks": c} for u, c in sorted(seen["links"].items())],
                "unsubscribed": entry.mailing_id in reasons,
                "unsubscribe_reason": reasons.get(entry.mailing_id),
            }
        )
    delivered = sum(1 for m in mailings if m["outcome"] == LedgerState.SENT)
    return {
        "recipient": {
            "id": person.id,
            "email": person.email,
            "mobile": person.mobile,
            "fields": dict(person.fields or {}),
        },
        "subscriptions": [
            {
                "list_id": sub.list_id,
                "list_name": name,
                "channel": sub.channel,
                "status": sub.status,
                "subscribed_at": sub.subscribed_at,
                "unsubscribed_at": sub.unsubscribed_at,
                "unsubscribe_reason": sub.unsubscribe_reason,
                "unsubscribe_mailing_id": sub.unsubscribe_mailing_id,
            }
            for sub, name in subs
        ],
        "mailings": mailings,
        "totals": {
            "mailings": len(mailings),
            "delivered": delivered,
            "opened": sum(1 for m in mailings if m["opens"]),
            "clicked": sum(1 for m in mailings if m["clicks"]),
            "opens": sum(m["opens"] for m in mailings),
            "clicks": sum(m["clicks"] for m in mailings),
        },
    }


def time_text(value: datetime | None) -> str:
    """A timestamp as CSV writes it (ISO 8601, empty for none)."""
    return value.isoformat() if value is not None else ""
