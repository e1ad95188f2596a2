"""The sending pipeline of one mailing in one process: ledger -> render -> SMTP pool -> ledger.

    claim chunk (rows -> `sending`, commit) -> render each row from the compiled skeleton ->
    pool.send_stream (pipelined sessions, bounded window) -> outcomes buffered -> record chunk
    (state, reply, counters, hard-bounce suppression; commit)

Database work runs in threads so SMTP I/O keeps flowing while a chunk is claimed or recorded. Several
processes may run this on the same mailing: each claims disjoint rows. A run ends when the mailing
is paused/cancelled, finished, or only has rows waiting for a later retry (`Outcome.resume_at`).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import re
import time
from collections import deque
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from missiva import runtime
from missiva.db import Database, utcnow
from missiva.delivery import audience_resolution, ledger, unsubscribe_tokens
from missiva.delivery.configuration import SendingConfig, current
from missiva.delivery.models import Mailing, MailingStatus
from missiva.delivery.relay_rates import DatabaseSlots
from missiva.delivery.smtp import MailTransport, SendJob, SendResult, SendStatus, open_transport
from missiva.delivery.smtp.result import no_reply
from missiva.errors import InvalidInput
from missiva.keys import derived_secret
from missiva.messages import service as messages
from missiva.messages.mime import DkimKey, MessageError, MessageSkeleton, Recipient, SendingDomain
from missiva.messages.templating import TemplateError
from missiva.reports import plan as tracking_plan

log = logging.getLogger(__name__)
SHORT_WAIT = 3.0  # seconds a run waits in place for a retry or throttle window instead of ending


class MailingNotSendable(InvalidInput):
    """The mailing cannot be sent as configured (no https base URL, no sender, bad template)."""

    code = "not_sendable"


@dataclass(frozen=True)
class RunOutcome:
    """How a run ended: the mailing's status, and when to run again if rows wait for later."""

    status: str
    resume_at: datetime | None = None
    sent: int = 0


def sending_domain(config: SendingConfig) -> SendingDomain:
    """The envelope/Message-ID domain with its signed-VERP secret and optional DKIM key."""
    dkim = None
    if config.dkim_selector and config.dkim_key_file:
        dkim = DkimKey(config.dkim_selector, Path(config.dkim_key_file).read_bytes())
    return SendingDomain(
        config.sending_domain,
        bounce_local=config.bounce_local,
        bounce_domain=config.bounce_domain,
        dkim=dkim,
        verp_secret=derived_secret("verp"),
    )


LOOPBACK_HTTP = re.compile(r"http://(127\.\d+\.\d+\.\d+|localhost|\[::1\])(:\d+)?(/|\Z)")


def unsubscribe_base() -> str:
    """The https base of one-click links; RFC 8058 one-click is honoured over https only.

    A loopback http base is accepted so a local `make run` can send into its Maildir outbox; such
    links only work on the machine itself.
    """
    base = runtime.settings().base_url
    if not base.startswith("https://") and not LOOPBACK_HTTP.match(base):
        raise MailingNotSendable(
            f"MISSIVA_BASE_URL must be an https URL for List-Unsubscribe one-click (got {base!r})",
            field="base_url",
        )
    return base


def compile_mailing(db: Database, mailing: Mailing, config: SendingConfig) -> MessageSkeleton:
    """Compile the mailing's message snapshot once for the whole run."""
    if not mailing.content:
        raise MailingNotSendable("the mailing has no message content", field="message_id")
    with db.session() as session:
        fields = messages.field_map(session, mailing.account_id)
        # Open and click tracking: links become per-recipient slots (missiva.reports.plan).
        tracking = tracking_plan.prepare_mailing(
            session,
            mailing_id=mailing.id,
            account_id=mailing.account_id,
            html=mailing.content.get("html"),
            text=mailing.content.get("text"),
        )
    snapshot = mailing.content
    if tracking is not None:
        snapshot = {**snapshot, "html": tracking.content.html, "text": tracking.content.text}
    return messages.compile_snapshot(
        snapshot,
        fields,
        mailing_id=mailing.id,
        domain=sending_domain(config),
        link_values=tracking.link_values if tracking is not None else None,
    )


def default_transport(config: SendingConfig) -> MailTransport:
    """The relay pool from the configuration, or the Maildir outbox when there is no relay.

    Relay rates are reserved in the database, so they hold across every sender process and machine.
    """
    return open_transport(
        list(config.relays),
        runtime.settings().data_dir / "outbox",
        slot_source=DatabaseSlots(runtime.database()),
    )


class MailingSender:
    """Sends one mailing from its ledger until it is done, stopped, or waiting for retries."""

    def __init__(
        self,
        db: Database,
        mailing_id: int,
        *,
        config: SendingConfig | None = None,
        transport: MailTransport | None = None,
    ) -> None:
        self.db = db
        self.mailing_id = mailing_id
        self.config = config or current()
        self._transport = transport
        self.sent = 0
        # When the run stopped for a throttle window (epoch seconds): the next run must not start before.
        self.throttled_until: float | None = None

    async def run(self) -> RunOutcome:
        """Send until the mailing finishes, pauses, is cancelled, or only has later retries left."""
        mailing = await asyncio.to_thread(self._prepare)
        if mailing.status != MailingStatus.RUNNING:
            return RunOutcome(mailing.status)
        skeleton = compile_mailing(self.db, mailing, self.config)
        base = unsubscribe_base()
        transport = self._transport or default_transport(self.config)
        worker = await asyncio.to_thread(self._register)
        try:
            with _collector_skips_long_lived_objects():
                await self._pipeline(mailing, skeleton, base, transport, worker)
        finally:
            if self._transport is None:
                await transport.close()
            await asyncio.to_thread(self._unregister, worker)
        return await asyncio.to_thread(self._conclude)

    # -- steps run in threads ------------------------------------------------------------------

    def _prepare(self) -> Mailing:
        audience_resolution.resolve(self.db, self.mailing_id)
        with self.db.session() as session:
            ledger.recover_orphans(session, self.mailing_id)
            mailing = session.get(Mailing, self.mailing_id)
            assert mailing is not None
            return mailing

    def _register(self) -> str:
        with self.db.session() as session:
            return ledger.register_worker(session)

    def _unregister(self, worker: str) -> None:
        with self.db.session() as session:
            ledger.unregister_worker(session, worker)

    def _claim(self, worker: str, budget: ledger.DomainBudget | None) -> ledger.Claim:
        with self.db.session() as session:
            ledger.heartbeat(session, worker)
            return ledger.claim(session, self.mailing_id, worker, self.config.chunk, domain_budget=budget)

    def _sync(self, mailing: Mailing, step: _SyncStep) -> _SyncResult:
        """One ledger round trip: claim ahead (if asked), record outcomes, move the hand-over mark.

        The mark lets the sender hand rows to SMTP until `window` rows are unrecorded: all of this is
        one transaction, so no row is ever past a committed mark while its outcome is unknown to the
        ledger, and a crash leaves at most `window` rows `uncertain`.
        """
        with self.db.session() as session:
            claim = None
            if step.claim_seq is not None:
                claim = ledger.claim(
                    session,
                    self.mailing_id,
                    step.worker,
                    self.config.chunk,
                    domain_budget=step.budget,
                    seq=step.claim_seq,
                )
                status = claim.status
            else:
                mailings = Mailing.__table__
                status = session.connection().scalar(
                    select(mailings.c.status).where(mailings.c.id == self.mailing_id)
                )
            if step.outcomes:
                self._record_in(session, mailing, step.outcomes)
            rows = step.unhanded
            if claim is not None and claim.rows:
                rows = rows + [(step.claim_seq, row) for row in claim.rows]
            durable = min(step.recorded + len(step.outcomes) + self.config.window, step.handed + len(rows))
            if durable > step.handed:
                seq, row = rows[durable - 1 - step.handed]
                ledger.hand_over(session, step.worker, seq, row.id)
            else:
                ledger.heartbeat(session, step.worker)
            return _SyncResult(claim, status or MailingStatus.CANCELLED, durable)

    def _finish(
        self, mailing: Mailing, outcomes: list[ledger.Outcome], worker: str, unhanded: list[int]
    ) -> None:
        """Record the last outcomes and give back the rows claimed ahead that were never handed over."""
        with self.db.session() as session:
            if outcomes:
                self._record_in(session, mailing, outcomes)
            ledger.release(session, self.mailing_id, worker, unhanded)

    def _record(self, mailing: Mailing, outcomes: list[ledger.Outcome]) -> None:
        with self.db.session() as session:
            self._record_in(session, mailing, outcomes)

    def _record_in(self, session: Session, mailing: Mailing, outcomes: list[ledger.Outcome]) -> None:
        ledger.record(
            session,
            mailing,
            outcomes,
            max_attempts=self.config.max_attempts,
            retry_base=self.config.retry_base,
        )

    def _next_due(self) -> float | None:
        with self.db.session() as session:
            when = ledger.next_retry_at(session, self.mailing_id)
        return None if when is None else when.timestamp()

    def _conclude(self) -> RunOutcome:
        with self.db.session() as session:
            mailing = session.get(Mailing, self.mailing_id, with_for_update=True)
            assert mailing is not None
            if mailing.status != MailingStatus.RUNNING:
                return RunOutcome(mailing.status, sent=self.sent)
            if not ledger.has_active_rows(session, self.mailing_id):
                mailing.status = MailingStatus.FINISHED
                mailing.finished_at = utcnow()
                return RunOutcome(mailing.status, sent=self.sent)
            resume = ledger.next_retry_at(session, self.mailing_id)
            if self.throttled_until is not None:
                # Rows are due now but the mailing's budget is spent: not before its next window.
                window = datetime.fromtimestamp(self.throttled_until, UTC)
                resume = window if resume is None else max(resume, window)
            return RunOutcome(mailing.status, resume, sent=self.sent)

    # -- the async pipeline --------------------------------------------------------------------

    async def _pipeline(
        self, mailing: Mailing, skeleton: MessageSkeleton, base: str, transport: MailTransport, worker: str
    ) -> None:
        """Claim, render, send and record until no row is left to send now.

        Rows are claimed a chunk ahead and handed to SMTP in (claim, id) order, never more than the
        send window past the last recorded outcome; the ledger round trips (`_sync`) run in a thread
        while the SMTP sessions keep going, one at a time. At a crash, the rows claimed but not yet
        handed over go back to the queue and at most `window` rows are `uncertain`.
        """
        budget = ledger.DomainBudget(mailing.per_domain_per_minute) if mailing.per_domain_per_minute else None
        bounce_domain = self.config.bounce_domain
        unsubscribe_key = derived_secret("unsubscribe")
        window, chunk = self.config.window, self.config.chunk
        record_every = max(1, window // 2)
        queue: deque[tuple[int, ledger.Claimed]] = deque()  # claimed, not yet handed over
        pending: list[ledger.Outcome] = []  # outcomes (and render failures) not yet recorded
        handed = recorded = durable = in_flight = claims = 0
        more = True  # the last claim found rows: claim again when the queue runs low
        stopped = False  # paused or cancelled: hand nothing more
        wait_until: float | None = None
        syncing: asyncio.Task[None] | None = None
        changed = asyncio.Event()

        async def sync(claim: bool) -> None:
            nonlocal pending, recorded, durable, more, stopped, wait_until, syncing, claims
            try:
                batch, pending = pending, []
                seq = None
                if claim:
                    claims += 1
                    seq = claims
                step = _SyncStep(worker, budget, seq, batch, list(queue), handed, recorded)
                result = await asyncio.to_thread(self._sync, mailing, step)
                recorded += len(batch)
                if result.claim is not None:
                    queue.extend((seq, row) for row in result.claim.rows)
                    more = bool(result.claim.rows)
                    wait_until = result.claim.wait_until
                stopped = stopped or result.status != MailingStatus.RUNNING
                durable = max(durable, result.durable)
                syncing = None
                kick()
            finally:
                changed.set()

        def kick() -> None:
            """Start a ledger round trip if one is due and none is under way; raise one's failure."""
            nonlocal syncing
            if syncing is not None:
                if not syncing.done():
                    return
                syncing.result()
                syncing = None
            if stopped:
                return
            claim = more and len(queue) < chunk
            if claim or len(pending) >= record_every or (pending and queue and handed >= durable):
                syncing = asyncio.create_task(sync(claim))

        def start(claim: bool) -> None:
            nonlocal syncing
            syncing = asyncio.create_task(sync(claim))

        def render(row: ledger.Claimed) -> SendJob | None:
            values = {int(k): v for k, v in row.fields.items() if k.isdigit()}
            token = unsubscribe_tokens.make(mailing.id, row.recipient_id or 0, key=unsubscribe_key)
            try:
                rendered = skeleton.render(
                    Recipient(
                        id=row.recipient_id or 0,
                        email=row.address,
                        unsubscribe_url=f"{base}/u/{token}",
                        unsubscribe_mailto=unsubscribe_tokens.mailto_address(token, bounce_domain),
                        fields=values,
                    )
                )
            except (MessageError, TemplateError) as exc:
                pending.append(ledger.Outcome(row, no_reply(SendStatus.FAILED, str(exc)[:500])))
                return None
            return SendJob(
                rendered.envelope_from,
                rendered.recipient,
                rendered.data,
                (row, rendered.message_id),
                crlf=True,
            )

        async def jobs() -> AsyncIterator[SendJob]:
            nonlocal handed, in_flight, more
            while True:
                changed.clear()
                kick()
                if stopped:
                    return
                if queue and handed < durable:
                    _, row = queue.popleft()
                    handed += 1
                    job = render(row)
                    if job is not None:
                        in_flight += 1
                        yield job
                    continue
                if syncing is not None or queue:
                    await changed.wait()  # a round trip under way, or outcomes awaited to free the window
                    continue
                # Nothing claimed and the last claim found nothing due now.
                if in_flight or pending:
                    # Outcomes still to come or to record may make rows due again (4xx retries).
                    if in_flight:
                        await asyncio.sleep(0.02)
                    start(True)
                    continue
                wait = wait_until
                if wait is None:
                    wait = await asyncio.to_thread(self._next_due)
                if wait is None or wait - time.time() > SHORT_WAIT:
                    self.throttled_until = wait_until
                    return
                await asyncio.sleep(max(0.01, wait - time.time()))
                more = True

        async def settle() -> None:
            """Let no ledger round trip start any more and wait for the one under way (its failure raises)."""
            nonlocal stopped
            stopped = True
            while syncing is not None and not syncing.done():
                await syncing
            if syncing is not None:
                syncing.result()

        result: SendResult
        try:
            async for job, result in transport.send_stream(jobs()):
                in_flight -= 1
                row, message_ref = job.ref
                pending.append(ledger.Outcome(row, result, message_ref))
                if result.status is SendStatus.SENT:
                    self.sent += 1
                kick()
                changed.set()
            await settle()
        except Exception:
            # The run fails (a database or transport error): record what is known and give back the
            # rows claimed ahead, if the database still answers, so only the window is left `sending`.
            with suppress(Exception):
                await settle()  # a claim under way adds to the rows to give back
            try:
                await asyncio.to_thread(self._finish, mailing, pending, worker, [r.id for _, r in queue])
            except Exception:
                log.exception("mailing %s: could not give back the rows claimed ahead", self.mailing_id)
            raise
        await asyncio.to_thread(self._finish, mailing, pending, worker, [row.id for _, row in queue])


@dataclass(frozen=True)
class _SyncStep:
    """What a ledger round trip is given: the outcomes to record and the sender's hand-over position."""

    worker: str
    budget: ledger.DomainBudget | None
    claim_seq: int | None  # claim a chunk under this number (None: no claim this time)
    outcomes: list[ledger.Outcome]
    unhanded: list[tuple[int, ledger.Claimed]]  # claimed rows not yet handed over, in order
    handed: int  # rows handed over so far (the index of `unhanded[0]`)
    recorded: int  # outcomes recorded before this step


@dataclass(frozen=True)
class _SyncResult:
    claim: ledger.Claim | None
    status: str
    durable: int  # rows (in hand-over order) that may now be handed to SMTP


@contextmanager
def _collector_skips_long_lived_objects() -> Iterator[None]:
    """Freeze what the process holds before the run (`gc.freeze`) and thaw it after.

    A sender process holds ~100 MB of long-lived objects (SQLAlchemy, compiled templates, the pool) and
    allocates a few dozen short-lived ones per message, so the collector ran often and each older
    generation pass walked everything. Frozen, the passes only visit what the run allocated: about 5%
    more messages/s in bench/send.py on PostgreSQL.
    """
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def run_mailing(db: Database, mailing_id: int, **kwargs: object) -> RunOutcome:
    """Run the mailing's sender (email, or SMS by its channel) to its end from synchronous code.

    Huey task, CLI and tests all come through here, so an SMS mailing gets the same scheduling,
    pause/cancel and crash handling as an email one.
    """
    with db.session() as session:
        channel = session.scalar(select(Mailing.channel).where(Mailing.id == mailing_id))
    if channel == "sms":
        from missiva.delivery.sms.sender import SmsMailingSender

        return asyncio.run(SmsMailingSender(db, mailing_id, **kwargs).run())  # type: ignore[arg-type]
    return asyncio.run(MailingSender(db, mailing_id, **kwargs).run())  # type: ignore[arg-type]
