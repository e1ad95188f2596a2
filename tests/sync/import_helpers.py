"""Helpers for the import and export tests (a plain module: test files import it by name)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from missiva.audience import lists as lists_svc
from missiva.audience.models import AudienceEvent, Group, GroupMember, MailingList, Recipient, Subscription
from missiva.db import Database
from missiva.sync.importer import ImportOptions, create_run, run_import
from missiva.sync.models import ImportRun
from missiva.sync.readers import ReadLimits


def make_list(db: Database, account_id: int, name: str = "News", groups: tuple[str, ...] = ()) -> dict:
    """A single opt-in list with named groups; its id and the group ids by name."""
    with db.session() as session:
        lst = lists_svc.create_list(session, account_id, name, opt_in="single")
        ids = {g: lists_svc.create_group(session, account_id, lst.id, g).id for g in groups}
        return {"id": lst.id, "groups": ids}


def import_file(
    db: Database,
    account_id: int,
    path: Path,
    *,
    batch_size: int = 1000,
    limits: ReadLimits | None = None,
    **options: Any,
) -> ImportRun:
    """Create a run for `path` with `options` and run it to its end."""
    with db.session() as session:
        run_id = create_run(session, account_id, path, ImportOptions(**options), source="cli").id
    return run_import(db, run_id, batch_size=batch_size, limits=limits)


def counters(run: ImportRun) -> dict[str, int]:
    return {
        "total": run.rows_total,
        "new": run.rows_new,
        "updated": run.rows_updated,
        "unchanged": run.rows_unchanged,
        "unsubscribed": run.rows_unsubscribed,
        "skipped": run.rows_skipped,
        "errors": run.rows_errors,
    }


def audience_state(db: Database, account_id: int) -> dict[str, Any]:
    """Everything an import can change, keyed by identity (not by id, which may differ between runs)."""
    with db.session() as session:
        people = {
            rid: (email, mobile, fields if isinstance(fields, dict) else json.loads(fields))
            for rid, email, mobile, fields in session.execute(
                select(Recipient.id, Recipient.email, Recipient.mobile, Recipient.fields).where(
                    Recipient.account_id == account_id
                )
            )
        }

        def who(rid: int | None) -> str | None:
            return None if rid is None or rid not in people else people[rid][0] or people[rid][1]

        list_names = {i: n for i, n in session.execute(select(MailingList.id, MailingList.name))}
        subs = sorted(
            (who(rid), list_names[list_id], channel, status, reason)
            for rid, list_id, channel, status, reason in session.execute(
                select(
                    Subscription.recipient_id,
                    Subscription.list_id,
                    Subscription.channel,
                    Subscription.status,
                    Subscription.unsubscribe_reason,
                ).where(Subscription.account_id == account_id)
            )
        )
        groups = sorted(
            (who(rid), name)
            for rid, name in session.execute(
                select(GroupMember.recipient_id, Group.name)
                .join(Group, Group.id == GroupMember.group_id)
                .where(GroupMember.account_id == account_id)
            )
        )
        events = sorted(
            (etype, who(rid), source, reason)
            for etype, rid, source, reason in session.execute(
                select(
                    AudienceEvent.type, AudienceEvent.recipient_id, AudienceEvent.source, AudienceEvent.reason
                ).where(AudienceEvent.account_id == account_id)
            )
        )
    return {
        "recipients": sorted(people.values(), key=lambda r: (r[0] or "", r[1] or "")),
        "subscriptions": subs,
        "groups": groups,
        "events": events,
    }


def count(db: Database, model: type) -> int:
    with db.session() as session:
        return session.scalar(select(func.count()).select_from(model)) or 0
