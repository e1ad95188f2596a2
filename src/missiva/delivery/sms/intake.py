"""What transports hear back (receipts, inbound SMS), written to the database before it is acknowledged.

The SMPP client acknowledges a deliver_sm when its ``on_event`` returns and asks the SMSC to redeliver
when it raises; :class:`EventIntake` is that ``on_event``. Events arriving together are written in one
transaction (group commit: a receipt per transaction would cap receipts at the database's commit
rate), and each caller returns only once its event is committed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from missiva.db import Database
from missiva.delivery.sms import inbound, receipt_matching
from missiva.delivery.sms.events import InboundSms, Receipt

MAX_BATCH = 500


class EventIntake:
    """Receipts and inbound messages of one account, committed in batches."""

    def __init__(
        self,
        db: Database,
        account_id: int,
        receipt_id_types: dict[str, str] | None = None,
        *,
        match: bool = True,
    ) -> None:
        self.db = db
        self.account_id = account_id
        # A sender matches receipts itself after recording each chunk of parts; matching here too
        # would rescan the receipts that wait for parts not yet recorded at every batch.
        self.match = match
        self.receipt_id_types = dict(receipt_id_types or {})
        self.receipts = 0
        self.inbound = 0
        self._pending: list[tuple[Receipt | InboundSms, asyncio.Future[None]]] = []
        self._writer: asyncio.Task[None] | None = None

    async def __call__(self, event: Receipt | InboundSms) -> None:
        """Return once `event` is committed; raise (so the SMSC redelivers) if writing failed."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((event, future))
        if self._writer is None:
            self._writer = asyncio.create_task(self._drain())
        await future

    async def _drain(self) -> None:
        try:
            while self._pending:
                batch, self._pending = self._pending[:MAX_BATCH], self._pending[MAX_BATCH:]
                try:
                    await asyncio.to_thread(self.write, [event for event, _ in batch])
                except Exception as exc:
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                for _, future in batch:
                    if not future.done():
                        future.set_result(None)
        finally:
            self._writer = None

    def write(self, events: Sequence[Receipt | InboundSms]) -> None:
        """Store receipts, handle inbound messages, match what can be matched: one transaction."""
        receipts = [e for e in events if isinstance(e, Receipt)]
        messages = [e for e in events if isinstance(e, InboundSms)]
        with self.db.session() as session:
            if receipts:
                receipt_matching.store(
                    session, self.account_id, receipts, lambda name: self.receipt_id_types.get(name, "same")
                )
                if self.match:
                    receipt_matching.apply_pending(session, self.account_id)
            for message in messages:
                inbound.handle(session, self.account_id, message)
        self.receipts += len(receipts)
        self.inbound += len(messages)
