"""Applies one batch of prepared rows to the audience, set-based, inside the caller's transaction."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import TextClause, bindparam, text
from sqlalchemy.orm import Session

from missiva.audience import events
from missiva.audience.enums import EventType
from missiva.audience.models import AudienceEvent
from missiva.db import UTCDateTime
from missiva.sync.importer.options import Channels, ImportOptions
from missiva.sync.importer.policy import Action, action_case, decide
from missiva.sync.importer.statements import RETURNED_EVENT_COLUMNS, Statements, statements_for

PreparedRow = tuple[int, str | None, str | None, int, str, str | None]
"""(ordinal, email, mobile, list id, field patch as JSON, group ids as JSON or None)."""

_COLUMNS = ("seq", "email", "mobile", "list_id", "patch", "groups")
_SUBSCRIPTION_EVENTS = {
    Action.CREATE_SUBSCRIBED: EventType.SUBSCRIPTION_CONFIRMED,
    Action.SUBSCRIBE: EventType.SUBSCRIPTION_CONFIRMED,
    Action.CREATE_PENDING: EventType.SUBSCRIPTION_REQUESTED,
    Action.REQUEST: EventType.SUBSCRIPTION_REQUESTED,
    Action.CREATE_UNSUBSCRIBED: EventType.SUBSCRIPTION_UNSUBSCRIBED,
    Action.UNSUBSCRIBE: EventType.SUBSCRIPTION_UNSUBSCRIBED,
}


@dataclass(frozen=True)
class BatchOutcome:
    """How the rows of one batch ended (see `ImportCounters` for the meaning of each)."""

    new: int = 0
    updated: int = 0
    unchanged: int = 0
    unsubscribed: int = 0
    skipped: int = 0
    events: int = 0


class BatchWriter:
    """Runs the statements of `statements.py` for one account and one set of options.

    The statements that the options can never need (status changes an import of this kind cannot
    make, group steps when no row has groups) are left out, so the common import runs few of them.
    """

    def __init__(self, dialect: str, account_id: int, options: ImportOptions) -> None:
        self.dialect = dialect
        self.account_id = account_id
        self.options = options
        self.sql: Statements = statements_for(dialect)
        self._actions = {decide(s, options) for s in (None, "subscribed", "pending", "unsubscribed")}
        self._event_types = {_SUBSCRIPTION_EVENTS[a] for a in self._actions if a in _SUBSCRIPTION_EVENTS}
        self._event_types.add(EventType.RECIPIENT_UPDATED)
        self._clauses: dict[str, TextClause] = {}

    def _clause(self, sql: str) -> TextClause:
        clause = self._clauses.get(sql)
        if clause is None:
            clause = text(sql)
            if ":now" in sql:
                clause = clause.bindparams(bindparam("now", type_=UTCDateTime()))
            self._clauses[sql] = clause
        return clause

    def _run(self, session: Session, sql: str, now: datetime, **params: Any) -> Any:
        return session.execute(self._clause(sql), {"a": self.account_id, "now": now, **params})

    def apply(self, session: Session, rows: Sequence[PreparedRow], now: datetime) -> BatchOutcome:
        """Write `rows` (unique recipients, already validated) and their events; return the outcomes."""
        if not rows:
            return BatchOutcome()
        sql = self.sql
        conn = session.connection()
        if conn.exec_driver_sql(sql.temp_exists).scalar() is None:
            for ddl in sql.create_temp:
                conn.exec_driver_sql(ddl)
        for stmt in sql.clear_temp:
            conn.exec_driver_sql(stmt)
        if self.dialect == "postgresql":
            # Planning the batch's statements is quick; JIT-compiling them costs more than running them.
            # The batch commits without waiting for its WAL to reach the disk: the batch and its
            # checkpoint are one transaction, so a server crash loses both together and the resumed
            # run redoes them, and the run's final (synchronous) commit flushes every batch before
            # the run says it has completed.
            conn.exec_driver_sql("SET LOCAL jit = off; SET LOCAL synchronous_commit = off")
        self._load(session, rows)
        self._analyze(conn, "imp_rows")
        run = self._run
        run(session, sql.resolve, now)
        if sql.insert_new_marked is not None:
            created = run(session, sql.insert_new_marked, now).rowcount
        else:
            created = run(session, sql.insert_new, now).rowcount
        run(session, sql.resolve, now)
        self._analyze(conn, "imp_rows")
        if created and sql.insert_new_marked is None:
            run(session, sql.mark_new, now)
        channels = self.options.channels
        case = action_case(self.options, "x.cur")
        if channels in (Channels.EMAIL, Channels.BOTH):
            run(session, sql.expand_subs.format(channel="email", identity="email", case=case), now)
        if channels in (Channels.SMS, Channels.BOTH):
            run(session, sql.expand_subs.format(channel="sms", identity="mobile", case=case), now)
        has_email = any(r[1] is not None for r in rows)
        has_mobile = any(r[2] is not None for r in rows)
        if has_mobile:  # without mobiles, every row finds its own recipient by its own email
            run(session, sql.collapse_subs, now)
        self._analyze(conn, "imp_subs")
        if Action.SKIP in self._actions:
            run(session, sql.mark_skipped, now)
        run(session, sql.create_subs, now)
        if self._actions & {Action.CREATE_PENDING, Action.REQUEST}:
            run(session, sql.fill_subscription_ids, now)
        if Action.SUBSCRIBE in self._actions:
            run(session, sql.set_subscribed, now)
        if Action.REQUEST in self._actions:
            run(session, sql.set_pending, now)
        if Action.UNSUBSCRIBE in self._actions:
            run(session, sql.set_unsubscribed, now)
        run(session, sql.merge_fields, now)
        run(session, sql.write_fields, now)
        if has_email and has_mobile:
            run(session, sql.attach_email, now)
            run(session, sql.attach_mobile, now)
            run(session, sql.write_identities, now)
        if any(r[5] is not None for r in rows):
            run(session, sql.collect_groups, now)
            self._analyze(conn, "imp_groups")
            run(session, sql.add_groups, now)
            if self.options.replace_groups:
                run(session, sql.collect_removals, now)
                run(session, sql.remove_groups, now)
        run(session, sql.describe_changes, now)
        emitted = self._insert_events(session, now)
        counts = Counter({outcome: n for outcome, n in run(session, sql.outcomes, now)})
        return BatchOutcome(
            new=counts["new"],
            updated=counts["updated"],
            unchanged=counts["unchanged"],
            unsubscribed=counts["unsubscribed"],
            skipped=counts["skipped"],
            events=emitted,
        )

    def refresh_statistics(self, session: Session) -> None:
        """Let PostgreSQL re-plan for tables an import is growing fast (called after a few batches).

        Autovacuum analyzes a table only after a while; until then a list that grew from nothing to
        100,000 members in a minute is planned as empty, and per-row lookups pick a scan of the whole
        list instead of the unique (recipient, list, channel) index.
        """
        if self.dialect == "postgresql":
            for table in ("recipients", "subscriptions", "group_members"):
                session.connection().exec_driver_sql(f"ANALYZE {table}")

    def _analyze(self, conn: Any, table: str) -> None:
        # Temporary tables have no statistics unless asked; without them PostgreSQL plans the
        # per-batch joins as if the tables were empty.
        if self.dialect == "postgresql":
            conn.exec_driver_sql(f"ANALYZE {table}")

    def _load(self, session: Session, rows: Sequence[PreparedRow]) -> None:
        conn = session.connection()
        if self.dialect == "postgresql":
            raw = conn.connection.driver_connection
            with raw.cursor() as cur, cur.copy(f"COPY imp_rows ({', '.join(_COLUMNS)}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
        else:
            marks = ", ".join("?" for _ in _COLUMNS)
            conn.exec_driver_sql(f"INSERT INTO imp_rows ({', '.join(_COLUMNS)}) VALUES ({marks})", rows)

    def _insert_events(self, session: Session, now: datetime) -> int:
        confirm = "true" if self.options.send_confirmation else "false"
        stmt = self.sql.insert_events.format(confirm=confirm)
        interest = events.batch_interest()
        wanted = self._event_types if interest is None else self._event_types & interest
        if not wanted:
            return self._run(session, stmt, now).rowcount or 0
        returned = self._run(session, f"{stmt} RETURNING {RETURNED_EVENT_COLUMNS}", now).all()
        created = [_event(row, self.dialect) for row in returned]
        created.sort(key=lambda e: e.id)
        events.notify_batch(session, created)
        return len(created)


def _event(row: Any, dialect: str) -> AudienceEvent:
    """A detached AudienceEvent for listeners, from a RETURNING row."""
    data = row.data
    if isinstance(data, str):
        data = json.loads(data)
    occurred = row.occurred_at
    if isinstance(occurred, str):
        occurred = UTCDateTime().process_result_value(datetime.fromisoformat(occurred), None)
    return AudienceEvent(
        id=row.id,
        account_id=row.account_id,
        type=row.type,
        occurred_at=occurred,
        list_id=row.list_id,
        recipient_id=row.recipient_id,
        channel=row.channel,
        source=row.source,
        reason=row.reason,
        mailing_id=row.mailing_id,
        data=data,
    )
