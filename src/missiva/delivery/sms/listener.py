"""Keep every account's SMPP binds open to receive delivery receipts and replies between mailings.

Receipts often arrive minutes or hours after a mailing's sender has unbound, and replies (STOP) at any
time; SMSCs deliver them to whichever transceiver bind of the account is up. ``missiva sms listen``
(or ``serve``) runs :class:`SmsListener`: one set of binds per account with an SMPP transport, each
feeding an :class:`EventIntake`, and a periodic sweep that matches receipts whose parts were recorded
after they arrived (by a sender in another process). Transport changes take effect on restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading

from sqlalchemy import select

from missiva.db import Database
from missiva.delivery.sms import receipt_matching, transports
from missiva.delivery.sms.intake import EventIntake
from missiva.delivery.sms.models import SmsTransportConfig

log = logging.getLogger(__name__)
SWEEP_INTERVAL = 5.0


class SmsListener:
    """Binds of every account with an enabled SMPP transport, until :meth:`stop`."""

    def __init__(self, db: Database, *, sweep_interval: float = SWEEP_INTERVAL) -> None:
        self.db = db
        self.sweep_interval = sweep_interval
        self.intakes: dict[int, EventIntake] = {}
        self.ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def _accounts(self) -> list[int]:
        with self.db.session() as session:
            return list(
                session.scalars(
                    select(SmsTransportConfig.account_id)
                    .where(SmsTransportConfig.kind == "smpp", SmsTransportConfig.enabled.is_(True))
                    .distinct()
                    .order_by(SmsTransportConfig.account_id)
                )
            )

    def _sweep(self) -> int:
        applied = 0
        with self.db.session() as session:
            for account_id in self.intakes:
                applied += receipt_matching.apply_pending(session, account_id)
        return applied

    async def run(self) -> None:
        """Bind, then receive until :meth:`stop` is called."""
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        async with contextlib.AsyncExitStack() as stack:
            for account_id in await asyncio.to_thread(self._accounts):
                intake = EventIntake(self.db, account_id)
                try:
                    opened = await stack.enter_async_context(
                        transports.open_for_account(self.db, account_id, intake, kinds=("smpp",))
                    )
                except (transports.NoTransport, transports.TransportsUnavailable) as exc:
                    log.warning("sms listener: account %s: %s", account_id, exc)
                    continue
                intake.receipt_id_types.update(opened.receipt_id_types)
                self.intakes[account_id] = intake
            self.ready.set()
            while not self._stop.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), self.sweep_interval)
                await asyncio.to_thread(self._sweep)

    def stop(self) -> None:
        """Ask :meth:`run` to unbind and return (callable from any thread)."""
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
