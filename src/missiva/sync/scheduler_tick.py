"""What the worker's minute tick does for the batch sync: start due jobs, resume stalled imports."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from sqlalchemy import select

from missiva.db import Database, utcnow
from missiva.sync.importer.engine import LEASE
from missiva.sync.importer.runs import RunStatus
from missiva.sync.models import ImportRun
from missiva.sync.schedule import claim, due_jobs


def start_due_jobs(db: Database, start: Callable[[int], object], now: datetime | None = None) -> list[int]:
    """Claim every due job (moving its next run on) and hand it to `start`, which enqueues it.

    Claiming before enqueueing keeps a slow queue from receiving the same job at every tick.
    """
    now = now or utcnow()
    started = []
    with db.session() as session:
        jobs = due_jobs(session, now)
    for job_id in jobs:
        with db.session() as session:
            if not claim(session, job_id, now):
                continue
        start(job_id)
        started.append(job_id)
    return started


def stalled_imports(db: Database, now: datetime | None = None) -> list[int]:
    """Runs queued by the API or a drop whose worker has not reported for a while (it died)."""
    now = now or utcnow()
    with db.session() as session:
        stmt = select(ImportRun.id).where(
            ImportRun.source.in_(["api", "drop"]),
            ImportRun.status.in_([RunStatus.QUEUED, RunStatus.CHECKING, RunStatus.IMPORTING]),
            ImportRun.updated_at < now - LEASE,
        )
        return list(session.scalars(stmt.order_by(ImportRun.id)))
