"""When sync jobs run: cron expressions (UTC) read with croniter, and a claim so one run at a time."""

from __future__ import annotations

from datetime import datetime, timedelta

from croniter import CroniterBadCronError, croniter
from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from missiva.errors import InvalidInput
from missiva.sync.models import SyncJob

# A run still marked running after this long is taken to have died with its worker.
STALE_RUN = timedelta(hours=2)


def check_schedule(expression: str) -> str:
    """`expression` if it is a valid five-field cron expression, else InvalidInput."""
    expression = " ".join(expression.split())
    if len(expression.split()) != 5:
        raise InvalidInput(
            "schedule must be a cron expression of five fields, e.g. '0 2 * * *'", field="schedule"
        )
    try:
        croniter(expression)
    except (CroniterBadCronError, ValueError, KeyError) as exc:
        raise InvalidInput(f"invalid cron expression {expression!r}: {exc}", field="schedule") from None
    return expression


def next_run(expression: str, after: datetime) -> datetime:
    """The first time after `after` that `expression` matches (UTC)."""
    return croniter(expression, after).get_next(datetime)


def due_jobs(session: Session, now: datetime) -> list[int]:
    """Ids of active jobs whose next run time has come and that are not running."""
    stmt = select(SyncJob.id).where(
        SyncJob.active.is_(True),
        SyncJob.next_run_at <= now,
        or_(SyncJob.running_since.is_(None), SyncJob.running_since < now - STALE_RUN),
    )
    return list(session.scalars(stmt.order_by(SyncJob.next_run_at, SyncJob.id)))


def claim(session: Session, job_id: int, now: datetime, *, scheduled: bool = True) -> bool:
    """Mark the job running (and, for a scheduled run, move its next run on); False if another has it.

    One UPDATE with the condition in its WHERE clause, so two schedulers cannot both claim a job.
    """
    job = session.get(SyncJob, job_id)
    if job is None:
        return False
    values: dict[str, object] = {"running_since": now}
    if scheduled:
        values["next_run_at"] = next_run(job.schedule, now)
    result = session.execute(
        update(SyncJob)
        .where(
            SyncJob.id == job_id,
            or_(SyncJob.running_since.is_(None), SyncJob.running_since < now - STALE_RUN),
        )
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)


def release(session: Session, job_id: int, now: datetime, status: str, error: str | None) -> None:
    """The run is over: record how it went."""
    session.execute(
        update(SyncJob)
        .where(SyncJob.id == job_id)
        .values(running_since=None, last_run_at=now, last_status=status, last_error=error)
        .execution_options(synchronize_session=False)
    )
