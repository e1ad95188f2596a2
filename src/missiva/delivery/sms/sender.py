"""The SMS sending pipeline of one mailing: ledger -> render -> SMS transports -> ledger.

    claim chunk (rows -> `sending`, commit) -> render each row's text (merge tags, opt-out text) ->
    submit through the account's transports (SMPP/HTTP with failover), `concurrency` at a time ->
    record outcomes and the SMSC id of every part (commit) -> receipts settle rows as they arrive

It is :class:`MailingSender` with another transport: audience resolution, claiming, throttling,
pause/cancel, crash recovery (`sending` rows of a dead sender become `uncertain`) and counters are the
email engine's. Transport outcomes map onto the ledger by their contract
(:mod:`missiva.delivery.sms.transport`): accepted -> sent, NotSent -> deferred and retried,
Uncertain -> uncertain (never resent on its own), Rejected -> failed with the SMPP/HTTP status.

Receipts arriving on this run's SMPP binds are stored by :class:`EventIntake`; after the last submit
the run keeps its binds open up to ``receipt_wait`` seconds for the receipts still due (a separate
``missiva sms listen`` process receives the ones that come later).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from dataclasses import dataclass
from datetime import timedelta

from missiva.db import Database, utcnow
from missiva.delivery import ledger
from missiva.delivery.configuration import SendingConfig, current
from missiva.delivery.models import Mailing, MailingStatus
from missiva.delivery.sender import SHORT_WAIT, MailingNotSendable, MailingSender, RunOutcome
from missiva.delivery.sms import receipt_matching, transports
from missiva.delivery.sms.addresses import InvalidAddress
from missiva.delivery.sms.content import SmsTemplate
from missiva.delivery.sms.encoding import SmsTextError
from missiva.delivery.sms.intake import EventIntake
from missiva.delivery.sms.transport import NotSent, Rejected, SmsTransport, SubmitResult, Uncertain
from missiva.delivery.smtp import SendResult, SendStatus
from missiva.delivery.smtp.result import no_reply
from missiva.errors import InvalidInput
from missiva.messages import service as messages
from missiva.messages.templating import TemplateError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SmsConfig:
    """SMS-specific knobs of a sender run (the rest comes from SendingConfig)."""

    concurrency: int = 32  # submits in flight; the SMPP client's own window applies per bind too
    receipt_wait: float = 0.0  # seconds to keep binds open after the last submit for receipts

    @classmethod
    def from_env(cls) -> SmsConfig:
        """MISSIVA_SMS_CONCURRENCY and MISSIVA_SMS_RECEIPT_WAIT."""
        return cls(
            concurrency=int(os.environ.get("MISSIVA_SMS_CONCURRENCY") or 32),
            receipt_wait=float(os.environ.get("MISSIVA_SMS_RECEIPT_WAIT") or 0),
        )


@dataclass(frozen=True, slots=True)
class SmsOutcome:
    """A ledger outcome and, for an accepted message, the transport and the id of each part."""

    outcome: ledger.Outcome
    transport: str = ""
    ids: tuple[str, ...] = ()


def outcome_of(row: ledger.Claimed, submit: SubmitResult | Exception) -> SmsOutcome:
    """Map a submit's result or exception onto the ledger (see the module docstring)."""
    if isinstance(submit, SubmitResult):
        text = f"accepted by {submit.transport}: {submit.segments} part(s), {submit.encoding}"
        result = SendResult(SendStatus.SENT, 0, None, text)
        ref = ",".join(submit.message_ids)[:255] or None
        return SmsOutcome(ledger.Outcome(row, result, ref), submit.transport, tuple(submit.message_ids))
    if isinstance(submit, NotSent):
        return SmsOutcome(ledger.Outcome(row, no_reply(SendStatus.SOFT_FAIL, submit.reason[:500])))
    if isinstance(submit, Uncertain):
        return SmsOutcome(ledger.Outcome(row, no_reply(SendStatus.UNCERTAIN, submit.reason[:500])))
    if isinstance(submit, Rejected):
        result = SendResult(SendStatus.FAILED, submit.command_status, None, submit.reason[:500])
        return SmsOutcome(ledger.Outcome(row, result))
    return SmsOutcome(ledger.Outcome(row, no_reply(SendStatus.FAILED, str(submit)[:500])))


class SmsMailingSender(MailingSender):
    """Sends one SMS mailing from its ledger until it is done, stopped, or waiting for retries.

    ``transport`` replaces the account's configured transports (tests, benchmarks); receipts then
    reach the ledger only if the caller wires that transport's events to :attr:`intake`.
    """

    def __init__(
        self,
        db: Database,
        mailing_id: int,
        *,
        config: SendingConfig | None = None,
        sms: SmsConfig | None = None,
        transport: SmsTransport | None = None,
    ) -> None:
        super().__init__(db, mailing_id, config=config or current())
        self.sms = sms or SmsConfig.from_env()
        self._sms_transport = transport
        self.intake: EventIntake | None = None

    async def run(self) -> RunOutcome:
        """Send until the mailing finishes, pauses, is cancelled, or only has later retries left."""
        mailing = await asyncio.to_thread(self._prepare)
        if mailing.status != MailingStatus.RUNNING:
            return RunOutcome(mailing.status)
        template = await asyncio.to_thread(self._compile, mailing)
        self.intake = EventIntake(self.db, mailing.account_id, match=False)
        if self._sms_transport is not None:
            await self._run_with(mailing, template, self._sms_transport)
            return await asyncio.to_thread(self._conclude)
        try:
            async with transports.open_for_account(self.db, mailing.account_id, self.intake) as opened:
                self.intake.receipt_id_types.update(opened.receipt_id_types)
                await self._run_with(mailing, template, opened.transport)
        except transports.TransportsUnavailable as exc:
            log.warning("mailing %s: %s; trying again later", self.mailing_id, exc)
            later = utcnow() + timedelta(seconds=self.config.retry_base)
            return RunOutcome(MailingStatus.RUNNING, later, sent=self.sent)
        except transports.NoTransport as exc:
            raise MailingNotSendable(exc.message, field="transports") from None
        return await asyncio.to_thread(self._conclude)

    async def _run_with(self, mailing: Mailing, template: SmsTemplate, transport: SmsTransport) -> None:
        worker = await asyncio.to_thread(self._register)
        try:
            await self._sms_pipeline(mailing, template, transport, worker)
            await self._await_receipts(mailing)
        finally:
            await asyncio.to_thread(self._unregister, worker)

    # -- steps run in threads ------------------------------------------------------------------

    def _compile(self, mailing: Mailing) -> SmsTemplate:
        if not mailing.content or mailing.content.get("channel") != "sms":
            raise MailingNotSendable("the mailing has no SMS content", field="message_id")
        with self.db.session() as session:
            fields = messages.field_map(session, mailing.account_id)
        try:
            return SmsTemplate(mailing.content, fields)
        except InvalidInput as exc:
            raise MailingNotSendable(exc.message, field=exc.field) from None

    def _record_sms(self, mailing: Mailing, outcomes: list[SmsOutcome]) -> None:
        with self.db.session() as session:
            # The receipt lock before the mailing row, in the order receipt intakes take them.
            receipt_matching.lock(session, mailing.account_id)
            ledger.record(
                session,
                mailing,
                [o.outcome for o in outcomes],
                max_attempts=self.config.max_attempts,
                retry_base=self.config.retry_base,
            )
            accepted = [
                (o.outcome.row.id, o.transport, o.ids)
                for o in outcomes
                if o.ids and o.outcome.result.status is SendStatus.SENT
            ]
            receipt_matching.record_parts(session, mailing, accepted)
            receipt_matching.apply_pending(session, mailing.account_id)

    def _open_parts(self, account_id: int) -> int:
        with self.db.session() as session:
            receipt_matching.apply_pending(session, account_id)
            return receipt_matching.open_parts(session, self.mailing_id)

    # -- the async pipeline --------------------------------------------------------------------

    async def _sms_pipeline(
        self, mailing: Mailing, template: SmsTemplate, transport: SmsTransport, worker: str
    ) -> None:
        slots = asyncio.Semaphore(self.sms.concurrency)
        buffer: list[SmsOutcome] = []
        lock = asyncio.Lock()
        flushing: asyncio.Task[None] | None = None
        in_flight: set[asyncio.Task[None]] = set()
        chunk = self.config.chunk

        async def flush(wait: bool = False) -> None:
            """Record buffered outcomes in a thread; at most one recording runs at a time."""
            nonlocal buffer, flushing
            async with lock:
                if flushing is not None:
                    await flushing
                    flushing = None
                batch, buffer = buffer, []
                if batch:
                    flushing = asyncio.create_task(asyncio.to_thread(self._record_sms, mailing, batch))
                if wait and flushing is not None:
                    await flushing
                    flushing = None

        async def submit(row: ledger.Claimed, text: str, sender_id: str) -> None:
            try:
                result: SubmitResult | Exception = await transport.submit(
                    f"{mailing.id}:{row.id}", row.address, sender_id, text
                )
            except (NotSent, Uncertain, Rejected, InvalidAddress, SmsTextError, ValueError) as exc:
                result = exc
            finally:
                slots.release()
            sms_outcome = outcome_of(row, result)
            if sms_outcome.outcome.result.status is SendStatus.SENT:
                self.sent += 1
            buffer.append(sms_outcome)
            if len(buffer) >= chunk:
                await flush()

        def start(row: ledger.Claimed) -> bool:
            values = {int(k): v for k, v in row.fields.items() if str(k).isdigit()}
            try:
                rendered = template.render(row.email or "", values)
            except (TemplateError, SmsTextError) as exc:
                failed = no_reply(SendStatus.FAILED, str(exc)[:500])
                buffer.append(SmsOutcome(ledger.Outcome(row, failed)))
                return False
            task = asyncio.create_task(submit(row, rendered.text, rendered.sender_id))
            in_flight.add(task)
            task.add_done_callback(in_flight.discard)
            return True

        while True:
            claim = await asyncio.to_thread(self._claim, worker, None)
            if claim.status != MailingStatus.RUNNING:
                break
            if not claim.rows:
                if in_flight or buffer:
                    # Outcomes still to come or to record may make rows due again (NotSent retries).
                    if in_flight:
                        await asyncio.wait(in_flight, return_when=asyncio.FIRST_COMPLETED)
                    await flush(wait=True)
                    continue
                wait = claim.wait_until
                if wait is None:
                    wait = await asyncio.to_thread(self._next_due)
                if wait is None or wait - time.time() > SHORT_WAIT:
                    self.throttled_until = claim.wait_until
                    break
                await asyncio.sleep(max(0.01, wait - time.time()))
                continue
            for row in claim.rows:
                await slots.acquire()
                if not start(row):
                    slots.release()
        if in_flight:
            await asyncio.gather(*in_flight)
        await flush(wait=True)

    async def _await_receipts(self, mailing: Mailing) -> None:
        """Keep the binds open up to receipt_wait seconds while parts of this mailing await receipts."""
        deadline = time.monotonic() + self.sms.receipt_wait
        while time.monotonic() < deadline:
            if await asyncio.to_thread(self._open_parts, mailing.account_id) == 0:
                return
            await asyncio.sleep(0.05)


def run_sms_mailing(db: Database, mailing_id: int, **kwargs: object) -> RunOutcome:
    """Run `SmsMailingSender` to its end from synchronous code."""
    return asyncio.run(SmsMailingSender(db, mailing_id, **kwargs).run())  # type: ignore[arg-type]
