"""The Huey instance, the background tasks and the listeners that queue them.

Storage: SQLite under the data directory by default (embedded, nothing to run), Redis when
MISSIVA_REDIS_URL is set so workers on several machines share one queue. MISSIVA_HUEY_IMMEDIATE=1 runs
tasks inline (tests, debugging).
"""

from __future__ import annotations

import logging
import threading
import time
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
from missiva.delivery import configuration as sending_configuration
from missiva.delivery import mailer, mailings, sender
from missiva.events import message_events, outbox
from missiva.events.dispatcher import Dispatcher
from missiva.inbound import imap_poller, processor
from missiva.reports import counters as tracking_counters
from missiva.reports import recording as tracking_recording
from missiva.reports import wiring as reports_wiring

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


@huey.task()
def roll_up_tracking() -> int:
    """Fold recorded opens and clicks into the mailings' counters (and their webhook events)."""
    return tracking_counters.roll_up_all(runtime.database())


@huey.periodic_task(crontab(minute="*"))
def roll_up_tracking_periodically() -> int:
    """A roll-up every minute, for events whose prompt roll-up was lost (restart, full queue)."""
    return tracking_counters.roll_up_all(runtime.database())


_last_roll_up = 0.0


def _schedule_roll_up() -> None:
    """After a tracking event: queue a roll-up, at most one a second per process."""
    global _last_roll_up
    now = time.monotonic()
    if now - _last_roll_up >= 1.0:
        _last_roll_up = now
        roll_up_tracking.schedule(delay=1)


@huey.task()
def send_mailing(mailing_id: int) -> str:
    """Run a sender on a mailing; re-queued for the time its next retry or throttle window is due.

    Several of these may run on one mailing at once (more workers, more machines): they claim
    disjoint ledger rows.
    """
    outcome = sender.run_mailing(runtime.database(), mailing_id)
    if outcome.resume_at is not None:
        send_mailing.schedule((mailing_id,), eta=outcome.resume_at)
    log.info("mailing %s: %s, %s sent in this run", mailing_id, outcome.status, outcome.sent)
    return outcome.status


def _start_senders(mailing_id: int) -> None:
    """Queue MISSIVA_SEND_PARALLEL senders for a mailing that starts or resumes; idle workers take them."""
    for _ in range(sending_configuration.current().parallel):
        send_mailing(mailing_id)


@huey.periodic_task(crontab(minute="*"))
def start_scheduled_mailings() -> list[int]:
    """Start the scheduled mailings whose time has come (checked every minute)."""
    with runtime.database().session() as session:
        return mailings.start_due(session)


# One dispatcher loop per worker process at a time; other processes may run theirs (claims are safe).
_dispatching = threading.Lock()


def run_webhook_dispatcher(max_seconds: float = 50.0) -> int:
    """Deliver due webhooks until none is due; 0 at once if this process is already doing so."""
    if not _dispatching.acquire(blocking=False):
        return 0
    try:
        return Dispatcher(runtime.database(), runtime.settings().secret_key).run_until_idle(max_seconds)
    finally:
        _dispatching.release()


@huey.task()
def dispatch_webhooks() -> int:
    """Deliver due webhooks now (queued after each commit that wrote outbox rows)."""
    return run_webhook_dispatcher()


@huey.task()
def webhooks_tick(remaining: int) -> None:
    """Deliver what is due, then come back in a second, `remaining` more times.

    Huey's periodic tasks run at most once a minute; this chain gives retries their one-second
    resolution without holding a worker thread between runs.
    """
    run_webhook_dispatcher()
    if remaining > 0:
        webhooks_tick.schedule((remaining - 1,), delay=1)


@huey.periodic_task(crontab(minute="*"))
def webhooks_minute() -> None:
    """Start this minute's chain of one-second dispatcher ticks."""
    webhooks_tick(58)


def _kick_dispatcher() -> None:
    dispatch_webhooks()


@huey.task(retries=3, retry_delay=30)
def process_inbound(key: str) -> str | None:
    """Process one message the inbound receiver or the IMAP poller has just spooled."""
    result = processor.process_key(runtime.settings(), runtime.database(), key)
    return result.action.value if result is not None else None


def enqueue_inbound(key: str) -> None:
    """The receiver's and the poller's callback: queue the processing of a spooled message."""
    process_inbound(key)


@huey.periodic_task(crontab(minute="*"))
def sweep_inbound() -> int:
    """Process what is still in the inbound spool (lost tasks, messages spooled while workers were down)."""
    summary = processor.process_pending(runtime.settings(), runtime.database(), limit=10_000)
    return summary.processed


@huey.periodic_task(crontab(minute="*"))
def poll_imap() -> int:
    """Fetch bounces from the mailbox of MISSIVA_IMAP_URL, when one is configured (every minute)."""
    settings = runtime.settings()
    if not settings.imap_url:
        return 0
    config = imap_poller.ImapConfig.from_url(settings.imap_url)
    return imap_poller.poll(settings, config, on_message=enqueue_inbound)


def _queue_confirmations(session: Session, batch: Sequence[AudienceEvent]) -> None:
    """The bulk form of `_queue_confirmation`: imports ask for the mail only with `send_confirmation`."""
    for event in batch:
        if event.channel != Channel.EMAIL or not (event.data or {}).get("send_confirmation", True):
            continue
        sub_id = event.data.get("subscription_id")
        if sub_id is not None:
            on_commit(session, lambda sub_id=sub_id: send_confirmation(sub_id))


def install_listeners() -> None:
    """Hook background work onto audience events, mailing starts and tracking events (idempotent)."""
    events.add_listener(_queue_confirmation)
    mailings.set_enqueuer(_start_senders)
    events.add_listener(outbox.on_audience_event)
    events.add_batch_listener(outbox.on_audience_events, replaces=outbox.on_audience_event)
    outbox.add_kicker(_kick_dispatcher)
    tracking_recording.on_recorded(_schedule_roll_up)
    reports_wiring.install()
    message_events.install()
    events.add_batch_listener(
        _queue_confirmations, types={EventType.SUBSCRIPTION_REQUESTED}, replaces=_queue_confirmation
    )


install_listeners()
