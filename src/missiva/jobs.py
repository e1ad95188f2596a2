"""The Huey instance, the background tasks and the listeners that queue them.

Storage: SQLite under the data directory by default (embedded, nothing to run), Redis when
MISSIVA_REDIS_URL is set so workers on several machines share one queue. MISSIVA_HUEY_IMMEDIATE=1 runs
tasks inline (tests, debugging).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from huey import Huey, MemoryHuey, RedisHuey, SqliteHuey, crontab
from sqlalchemy.orm import Session

from missiva import runtime
from missiva.audience import events
from missiva.audience.confirmation import build_message, make_token
from missiva.audience.enums import Channel, EventType, Status
from missiva.audience.models import AudienceEvent, MailingList, Recipient, Subscription
from missiva.config import Settings, get_settings
from missiva.db import on_commit
from missiva.delivery import mailer

log = logging.getLogger(__name__)


def make_huey(settings: Settings) -> Huey:
    """The queue for `settings`."""
    if settings.huey_immediate:
        return MemoryHuey("missiva", immediate=True)
    if settings.redis_url:
        return RedisHuey("missiva", url=settings.redis_url)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return SqliteHuey("missiva", filename=str(settings.data_dir / "huey.db"))


huey = make_huey(get_settings())


@huey.task(retries=5, retry_delay=60)
def send_confirmation(subscription_id: int) -> bool:
    """Send the double opt-in request of a still-pending subscription; False when there is none."""
    settings = runtime.settings()
    with runtime.database().session() as session:
        sub = session.get(Subscription, subscription_id)
        if sub is None or sub.status != Status.PENDING or sub.requested_at is None:
            return False
        recipient = session.get(Recipient, sub.recipient_id)
        lst = session.get(MailingList, sub.list_id)
        if recipient is None or lst is None or not recipient.email:
            return False
        token = make_token(settings.secret_key, sub.id, sub.requested_at)
        message = build_message(settings, lst, recipient.email, token)
    mailer.send(settings, message)
    log.info("confirmation request sent for subscription %s", subscription_id)
    return True


@huey.task()
def run_import_task(run_id: int) -> str:
    """Run (or resume) an import queued by the API, a drop upload or the stalled-run sweep."""
    from missiva.sync.importer import run_import

    return run_import(runtime.database(), run_id).status


@huey.task()
def run_sync_job(job_id: int, claimed: bool = True) -> dict[str, object]:
    """Run one sync job: import the new files of its folder, or push its export."""
    from dataclasses import asdict

    from missiva.sync.sync_jobs import run_job

    settings = runtime.settings()
    report = run_job(
        runtime.database(),
        job_id,
        secret_key=settings.secret_key,
        work_dir=settings.data_dir / "sync",
        claimed=claimed,
    )
    return asdict(report)


@huey.periodic_task(crontab(minute="*"))
def sync_scheduler() -> list[int]:
    """Every minute: start the sync jobs that are due, and resume imports whose worker died."""
    from missiva.sync.scheduler_tick import stalled_imports, start_due_jobs

    database = runtime.database()
    for run_id in stalled_imports(database):
        run_import_task(run_id)
    return start_due_jobs(database, lambda job_id: run_sync_job(job_id))


def _queue_confirmation(session: Session, event: AudienceEvent) -> None:
    """After a pending email subscription commits, queue its confirmation mail."""
    if event.type != EventType.SUBSCRIPTION_REQUESTED or event.channel != Channel.EMAIL:
        return
    sub_id = event.data.get("subscription_id")
    if sub_id is not None:
        on_commit(session, lambda: send_confirmation(sub_id))


def _queue_confirmations(session: Session, batch: Sequence[AudienceEvent]) -> None:
    """The bulk form of `_queue_confirmation`: imports ask for the mail only with `send_confirmation`."""
    for event in batch:
        if event.channel != Channel.EMAIL or not (event.data or {}).get("send_confirmation", True):
            continue
        sub_id = event.data.get("subscription_id")
        if sub_id is not None:
            on_commit(session, lambda sub_id=sub_id: send_confirmation(sub_id))


def install_listeners() -> None:
    """Hook background work onto audience events (idempotent)."""
    events.add_listener(_queue_confirmation)
    events.add_batch_listener(
        _queue_confirmations, types={EventType.SUBSCRIPTION_REQUESTED}, replaces=_queue_confirmation
    )


install_listeners()
