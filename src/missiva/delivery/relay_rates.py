"""Relay rates shared by every sender process: the `SlotSource` of `SmtpPool` on the database.

Each rated relay has one row in `relay_rates` holding its GCRA schedule (the time its next message
slot is free). A reservation locks the row, books up to the wanted slots with
`missiva.delivery.smtp.rate.schedule` and commits, so two processes (or machines sharing one
PostgreSQL) never get the same slot. SQLite transactions are serialised anyway (BEGIN IMMEDIATE).
"""

from __future__ import annotations

import time

from missiva.db import Database, insert_ignore
from missiva.delivery.models import RelayRate
from missiva.delivery.smtp.rate import Grant, check_reservation, schedule


class DatabaseSlots:
    """Reserves relay send slots in the database every process shares."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def reserve(self, key: str, wanted: int, interval: int, horizon: int, now: int | None = None) -> Grant:
        """Up to `wanted` slots `interval` µs apart on `key`'s schedule, none after ``now + horizon``.

        `now` (µs since the epoch) defaults to this machine's clock once the row is locked. Blocking
        (one short transaction): the pool calls it in a worker thread.
        """
        check_reservation(key, wanted, interval, horizon, now)
        with self.db.session() as session:
            row = session.get(RelayRate, key, with_for_update=True)
            if row is None:
                # First use of this relay: two processes may race to create the row; one does.
                insert_ignore(session, RelayRate, {"relay_key": key, "next_slot_us": 0})
                row = session.get(RelayRate, key, with_for_update=True, populate_existing=True)
                assert row is not None
            if now is None:
                now = time.time_ns() // 1000
            grant, row.next_slot_us = schedule(row.next_slot_us, now, wanted, interval, horizon)
        return grant
