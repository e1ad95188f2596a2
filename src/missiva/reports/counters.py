"""Folding raw tracking events into a mailing's counters, a batch at a time.

`roll_up` claims up to `BATCH` uncounted events (one UPDATE ... RETURNING, so an event is counted
exactly once even when it committed after later ones), flags the clicks only other rows reveal as a
scanner's, records each recipient's first open / click / click per link in `tracking_firsts` (INSERT
... ON CONFLICT DO NOTHING RETURNING tells which are new), and adds everything to `tracking_counters`
with one upsert per (mailing, metric, key). Roll-ups are serialised (an advisory lock on PostgreSQL,
the single writer on SQLite), so counters never race.

It runs from a background job shortly after events arrive, every minute, and before a report is read,
so reports are exact and cheap: a report reads a few counter rows whatever the mailing's size.
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, text, update
from sqlalchemy.orm import Session

from missiva.db import Database, dialect_insert
from missiva.reports.classify import BURST_LINKS, SCANNER_DELAY
from missiva.reports.models import (
    EventKind,
    Metric,
    TrackedMailing,
    TrackingCounter,
    TrackingEvent,
    TrackingFirst,
)

log = logging.getLogger(__name__)
BATCH = 5000
BURST_LOOKBACK = 5000  # ids before a batch searched for the start of a burst
_LOCK_KEY = 0x4D495353  # "MISS": the roll-up's advisory lock on PostgreSQL
_ANY = -1


@dataclass(frozen=True, slots=True)
class CountedEvent:
    """An event as the roll-up saw it, after bot detection (handed to `on_counted` listeners)."""

    id: int
    mailing_id: int
    account_id: int
    recipient_id: int | None
    kind: str
    link: int | None
    occurred_at: datetime
    is_bot: bool
    is_proxy: bool

    @property
    def human(self) -> bool:
        """Counted as a person's open or click (proxies fetch images but do not follow links)."""
        return not self.is_bot and (self.kind == EventKind.CLICK or not self.is_proxy)


DeliveryTimes = Callable[[Session, set[tuple[int, int]]], dict[tuple[int, int], datetime]]
_listeners: list[Callable[[Session, list[CountedEvent]], None]] = []


def _no_delivery_times(session: Session, pairs: set[tuple[int, int]]) -> dict[tuple[int, int], datetime]:
    return {}


_delivery_times: DeliveryTimes = _no_delivery_times


def set_delivery_times(source: DeliveryTimes) -> None:
    """Where to learn when (mailing, recipient) was delivered (the send ledger), for scanner detection."""
    global _delivery_times
    _delivery_times = source


def on_counted(listener: Callable[[Session, list[CountedEvent]], None]) -> None:
    """Call `listener` with each batch of newly counted events, in the roll-up's transaction (webhooks)."""
    if listener not in _listeners:
        _listeners.append(listener)


_FIRSTS = TrackingFirst.__table__
_COUNTERS = TrackingCounter.__table__
_EVENTS = TrackingEvent.__table__


_PG_FIRSTS = text(
    "INSERT INTO tracking_firsts (mailing_id, recipient_id, kind, link, at)"
    " SELECT * FROM unnest(CAST(:m AS integer[]), CAST(:r AS bigint[]), CAST(:k AS varchar[]),"
    " CAST(:l AS integer[]), CAST(:at AS timestamptz[]))"
    " ON CONFLICT DO NOTHING RETURNING mailing_id, kind, link"
)
_PG_COUNTERS = text(
    "INSERT INTO tracking_counters (mailing_id, metric, key, value)"
    " SELECT * FROM unnest(CAST(:m AS integer[]), CAST(:metric AS varchar[]), CAST(:key AS integer[]),"
    " CAST(:value AS bigint[]))"
    " ON CONFLICT (mailing_id, metric, key) DO UPDATE SET value = tracking_counters.value + excluded.value"
)


def _is_postgres(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def _insert_firsts(session: Session, rows: list[dict[str, Any]]) -> list[tuple[int, str, int]]:
    """Insert first-seen rows; the (mailing, kind, link) of each one that was new.

    PostgreSQL gets the whole batch as five arrays in one statement; SQLite an executemany of one
    compiled statement (insertmanyvalues with RETURNING).
    """
    if _is_postgres(session):
        params = {
            "m": [row["mailing_id"] for row in rows],
            "r": [row["recipient_id"] for row in rows],
            "k": [row["kind"] for row in rows],
            "l": [row["link"] for row in rows],
            "at": [row["at"] for row in rows],
        }
        result = session.connection().execute(_PG_FIRSTS, params)
    else:
        stmt = (
            dialect_insert(session)(_FIRSTS)
            .on_conflict_do_nothing()
            .returning(_FIRSTS.c.mailing_id, _FIRSTS.c.kind, _FIRSTS.c.link)
        )
        result = session.connection().execute(stmt, rows)
    return [(m, kind, link) for m, kind, link in result]


def _claim(session: Session, limit: int) -> list[CountedEvent]:
    pending = (
        select(_EVENTS.c.id).where(~_EVENTS.c.counted).order_by(_EVENTS.c.id).limit(limit).scalar_subquery()
    )
    stmt = (
        update(_EVENTS)
        .where(_EVENTS.c.id.in_(pending))
        .values(counted=True)
        .returning(
            _EVENTS.c.id,
            _EVENTS.c.mailing_id,
            _EVENTS.c.account_id,
            _EVENTS.c.recipient_id,
            _EVENTS.c.kind,
            _EVENTS.c.link,
            _EVENTS.c.occurred_at,
            _EVENTS.c.is_bot,
            _EVENTS.c.is_proxy,
        )
    )
    rows = [CountedEvent(*row) for row in session.connection().execute(stmt)]
    rows.sort(key=lambda e: e.id)
    return rows


def _scanner_clicks(session: Session, events: list[CountedEvent]) -> set[int]:
    """Ids of clicks that are a scanner's: too soon after delivery, or part of a same-second burst."""
    clicks = [e for e in events if e.kind == EventKind.CLICK and not e.is_bot and e.recipient_id is not None]
    if not clicks:
        return set()
    flagged: set[int] = set()
    pairs = {(e.mailing_id, e.recipient_id) for e in clicks if e.recipient_id is not None}
    delivered = _delivery_times(session, pairs)
    for e in clicks:
        sent = delivered.get((e.mailing_id, e.recipient_id))  # type: ignore[arg-type]
        if sent is not None and e.occurred_at - sent < SCANNER_DELAY:
            flagged.add(e.id)
    # Bursts: clicks of the same recipients just before this batch count too. Events of one second
    # sit next to each other in id order, so a bounded look-back on the primary key finds them.
    first_id = min(e.id for e in events)
    batch_ids = {e.id for e in events}
    earlier = (
        session.connection()
        .execute(
            select(
                _EVENTS.c.id,
                _EVENTS.c.mailing_id,
                _EVENTS.c.recipient_id,
                _EVENTS.c.link,
                _EVENTS.c.occurred_at,
            ).where(
                _EVENTS.c.id >= first_id - BURST_LOOKBACK,
                _EVENTS.c.id < first_id,
                _EVENTS.c.kind == EventKind.CLICK,
                _EVENTS.c.recipient_id.is_not(None),
            )
        )
        .all()
    )
    earlier = [row for row in earlier if (row.mailing_id, row.recipient_id) in pairs]
    by_pair: dict[tuple[int, int], list[tuple[datetime, int, int]]] = defaultdict(list)
    for event_id, m, r, link, at in earlier:
        by_pair[(m, r)].append((at, link, event_id))
    for e in events:
        if e.kind == EventKind.CLICK and (e.mailing_id, e.recipient_id) in pairs:
            by_pair[(e.mailing_id, e.recipient_id)].append((e.occurred_at, e.link, e.id))  # type: ignore[index]
    window = timedelta(seconds=1)
    for seen in by_pair.values():
        if len(seen) < BURST_LINKS:
            continue
        seen.sort()
        for i, (start, _link, _id) in enumerate(seen):
            inside = [x for x in seen[i:] if x[0] - start <= window]
            if len({x[1] for x in inside}) >= BURST_LINKS:
                flagged.update(x[2] for x in inside if x[2] in batch_ids)
    return flagged


def _started(session: Session, mailing_ids: Iterable[int]) -> dict[int, datetime]:
    rows = session.execute(
        select(TrackedMailing.mailing_id, TrackedMailing.started_at).where(
            TrackedMailing.mailing_id.in_(list(mailing_ids))
        )
    )
    return {mailing_id: started_at for mailing_id, started_at in rows}


def roll_up(session: Session, limit: int = BATCH) -> int:
    """Fold up to `limit` uncounted events into counters, in `session`'s transaction; how many."""
    if _is_postgres(session):
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK_KEY})
    events = _claim(session, limit)
    if not events:
        return 0
    bots = _scanner_clicks(session, events)
    if bots:
        session.connection().execute(
            update(_EVENTS).where(_EVENTS.c.id.in_(sorted(bots))).values(is_bot=True)
        )
        events = [
            CountedEvent(
                e.id,
                e.mailing_id,
                e.account_id,
                e.recipient_id,
                e.kind,
                e.link,
                e.occurred_at,
                True,
                e.is_proxy,
            )
            if e.id in bots
            else e
            for e in events
        ]
    started = _started(session, {e.mailing_id for e in events})
    counts: Counter[tuple[int, str, int]] = Counter()
    firsts: dict[tuple[int, int, str, int], datetime] = {}
    for e in events:
        m = e.mailing_id
        if e.kind == EventKind.OPEN:
            if e.is_bot:
                counts[(m, Metric.OPENS_BOT, 0)] += 1
                continue
            if e.is_proxy:
                counts[(m, Metric.OPENS_PROXY, 0)] += 1
                continue
            counts[(m, Metric.OPENS, 0)] += 1
            by_hour = Metric.OPENS_BY_HOUR
            keys = [(EventKind.OPEN, _ANY)]
        else:
            if e.is_bot:
                counts[(m, Metric.CLICKS_BOT, 0)] += 1
                continue
            counts[(m, Metric.CLICKS, 0)] += 1
            counts[(m, Metric.LINK_CLICKS, e.link or 0)] += 1
            by_hour = Metric.CLICKS_BY_HOUR
            keys = [(EventKind.CLICK, _ANY), (EventKind.CLICK, e.link or 0)]
        start = started.get(m)
        hour = max(0, int((e.occurred_at - start).total_seconds() // 3600)) if start else 0
        counts[(m, by_hour, hour)] += 1
        if e.recipient_id is not None:
            for kind, link in keys:
                firsts.setdefault((m, e.recipient_id, kind, link), e.occurred_at)
    if firsts:
        rows = [
            {"mailing_id": m, "recipient_id": r, "kind": k, "link": link, "at": at}
            for (m, r, k, link), at in sorted(firsts.items())
        ]
        for m, kind, link in _insert_firsts(session, rows):
            if kind == EventKind.OPEN:
                counts[(m, Metric.OPENS_UNIQUE, 0)] += 1
            elif link == _ANY:
                counts[(m, Metric.CLICKS_UNIQUE, 0)] += 1
            else:
                counts[(m, Metric.LINK_UNIQUE, link)] += 1
    add(session, counts)
    for listener in _listeners:
        listener(session, events)
    return len(events)


def add(session: Session, deltas: dict[tuple[int, str, int], int]) -> None:
    """Add to counters ((mailing, metric, key) -> n) with upserts, in a fixed order (no deadlocks)."""
    rows = [
        {"mailing_id": m, "metric": str(metric), "key": key, "value": n}
        for (m, metric, key), n in sorted(
            deltas.items(), key=lambda item: (item[0][0], str(item[0][1]), item[0][2])
        )
        if n
    ]
    if not rows:
        return
    if _is_postgres(session):
        params = {name: [row[column] for row in rows] for name, column in _COUNTER_COLUMNS}
        session.connection().execute(_PG_COUNTERS, params)
        return
    stmt = dialect_insert(session)(_COUNTERS)
    stmt = stmt.on_conflict_do_update(
        index_elements=["mailing_id", "metric", "key"],
        set_={"value": _COUNTERS.c.value + stmt.excluded.value},
    )
    session.connection().execute(stmt, rows)


_COUNTER_COLUMNS = (("m", "mailing_id"), ("metric", "metric"), ("key", "key"), ("value", "value"))


def roll_up_all(db: Database, limit: int = BATCH, max_batches: int = 1000) -> int:
    """Roll up until no event is waiting (each batch its own transaction); how many in all."""
    total = 0
    for _ in range(max_batches):
        with db.session() as session:
            done = roll_up(session, limit)
        total += done
        if done < limit:
            break
    return total


def read(session: Session, mailing_ids: Iterable[int]) -> dict[int, dict[tuple[str, int], int]]:
    """Every counter of the given mailings: mailing id -> {(metric, key): value}."""
    out: dict[int, dict[tuple[str, int], int]] = {m: {} for m in mailing_ids}
    if not out:
        return out
    rows = session.execute(
        select(
            TrackingCounter.mailing_id, TrackingCounter.metric, TrackingCounter.key, TrackingCounter.value
        ).where(TrackingCounter.mailing_id.in_(list(out)))
    )
    for m, metric, key, value in rows:
        out[m][(metric, key)] = int(value)
    return out
