"""Helpers for the import and export tests (a plain module: test files import it by name)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from missiva.audience import lists as lists_svc
from missiva.audience.models import AudienceEvent, Group, GroupMember, Recipient, Subscription
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
        recipients = {
            r.id: (r.email, r.mobile, dict(r.fields or {}))
            for r in session.scalars(select(Recipient).where(Recipient.account_id == account_id))
        }
        subs = sorted(
            (recipients[s.recipient_id][0] or recipients[s.recipient_id][1], s.list_id, s.channel, s.status)
            for s in session.scalars(select(Subscription).where(Subscription.account_id == account_id))
        )
        groups = sorted(
            (recipients[m.recipient_id][0] or recipients[m.recipient_id][1], name)
            for m, name in session.execute(
                select(GroupMember, Group.name)
                .join(Group, Group.id == GroupMember.group_id)
                .where(GroupMember.account_id == account_id)
            )
        )
        events = sorted(
            (e.type, e.recipient_id is not None and recipients.get(e.recipient_id, ("?",))[0], e.source)
            for e in session.scalars(select(AudienceEvent).where(AudienceEvent.account_id == account_id))
        )
    return {
        "recipients": sorted(recipients.values(), key=lambda r: (r[0] or "", r[1] or "")),
        "subscriptions": subs,
        "groups": groups,
        "events": events,
    }


def count(db: Database, model: type) -> int:
    with db.session() as session:
        return session.scalar(select(func.count()).select_from(model)) or 0
