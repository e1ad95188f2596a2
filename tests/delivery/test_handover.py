"""Rows claimed ahead but never handed to SMTP go back to the queue: after a crash, a pause, a cancel."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections import Counter
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from missiva.db import utcnow
from missiva.delivery import audience_resolution, configuration, ledger, mailings
from missiva.delivery.models import LedgerEntry, Mailing, SenderWorker
from missiva.delivery.sender import MailingSender, run_mailing
from missiva.delivery.smtp import SmtpPool, classify

from .conftest import HARD, received_to, started_mailing
from .test_crash import _sender

pytestmark = pytest.mark.usefixtures("no_sender_queued")


def _states(db, mailing_id: int) -> Counter[str]:
    with db.session() as session:
        return Counter(
            dict(
                session.execute(
                    select(LedgerEntry.state, func.count())
                    .where(LedgerEntry.mailing_id == mailing_id)
                    .group_by(LedgerEntry.state)
                ).all()
            )
        )


def test_a_dead_senders_rows_past_its_mark_are_queued_again_and_the_rest_uncertain(db, shop) -> None:
    emails = [f"h{i:02d}@example.org" for i in range(12)]
    mailing_id = started_mailing(db, shop, emails)
    audience_resolution.resolve(db, mailing_id)
    with db.session() as session:
        worker = ledger.register_worker(session)
    with db.session() as session:
        first = ledger.claim(session, mailing_id, worker, 5, seq=1)
        second = ledger.claim(session, mailing_id, worker, 5, seq=2)
        # Handed over: the first claim and two rows of the second.
        ledger.hand_over(session, worker, 2, second.rows[1].id)
    with db.session() as session:  # the sender dies: its lease runs out
        session.execute(
            update(SenderWorker)
            .where(SenderWorker.id == worker)
            .values(heartbeat_at=utcnow() - ledger.LEASE - timedelta(seconds=1))
        )

    with db.session() as session:
        uncertain = ledger.recover_orphans(session, mailing_id)
        rows = dict(
            session.execute(
                select(LedgerEntry.address, LedgerEntry.state).where(LedgerEntry.mailing_id == mailing_id)
            ).all()
        )
        counters = session.get(Mailing, mailing_id)

    handed = [r.address for r in first.rows] + [r.address for r in second.rows[:2]]
    assert uncertain == 7
    assert sorted(a for a, s in rows.items() if s == "uncertain") == sorted(handed)
    assert sorted(a for a, s in rows.items() if s == "queued") == sorted(set(emails) - set(handed))
    assert (counters.uncertain, counters.queued) == (7, 5)


def test_a_sender_without_a_mark_leaves_all_its_rows_uncertain(db, shop) -> None:
    mailing_id = started_mailing(db, shop, [f"n{i}@example.org" for i in range(4)])
    audience_resolution.resolve(db, mailing_id)
    with db.session() as session:
        worker = ledger.register_worker(session)
    with db.session() as session:
        ledger.claim(session, mailing_id, worker, 3)
        session.execute(update(SenderWorker).where(SenderWorker.id == worker).values(pid=2**22 + 7))
    with db.session() as session:
        assert ledger.recover_orphans(session, mailing_id) == 3
    assert _states(db, mailing_id) == {"uncertain": 3, "queued": 1}


def _run_until(settings, sink, mailing_id: int, received: int, **env: str):
    sender = _sender(settings, sink, mailing_id, **env)
    deadline = time.monotonic() + 30
    while len(sink.handler.received) < received:
        assert sender.poll() is None, "the sender finished too early"
        assert time.monotonic() < deadline
        time.sleep(0.01)
    return sender


def _stopped_mid_run(settings, db, shop, sink, emails: list[str], stop) -> tuple[int, Counter[str], Mailing]:
    """A sender process sends `emails` through a slow sink until `stop` (pause or cancel) ends its run."""
    mailing_id = started_mailing(db, shop, emails)
    sink.handler.stall_on_data = 0.004
    sender = _run_until(settings, sink, mailing_id, 30, MISSIVA_SEND_CHUNK="40")
    with db.session() as session:
        stopped = stop(session, shop["id"], mailing_id)
    out, _ = sender.communicate(timeout=30)
    assert out.strip().decode() == stopped.status
    with db.session() as session:
        return mailing_id, _states(db, mailing_id), session.get(Mailing, mailing_id)


def test_pause_mid_run_gives_back_the_rows_claimed_ahead(settings, db, shop, sink) -> None:
    emails = [f"p{i:03d}@example.org" for i in range(200)]
    mailing_id, states, m = _stopped_mid_run(settings, db, shop, sink, emails, mailings.pause)

    assert m.status == "paused" and "sending" not in states and "uncertain" not in states
    assert states["sent"] == len(received_to(sink)) and states["queued"] == len(emails) - states["sent"]
    assert (m.sent, m.queued) == (states["sent"], states["queued"])

    with db.session() as session:
        mailings.resume(session, shop["id"], mailing_id)
    second = _sender(settings, sink, mailing_id)
    out, _ = second.communicate(timeout=60)
    assert out.strip() == b"finished"
    assert sorted(received_to(sink)) == emails


def test_cancel_mid_run_cancels_the_rows_claimed_ahead(settings, db, shop, sink) -> None:
    emails = [f"c{i:03d}@example.org" for i in range(200)]
    _, states, m = _stopped_mid_run(settings, db, shop, sink, emails, mailings.cancel)

    received = Counter(received_to(sink))
    assert m.status == "cancelled" and set(states) == {"sent", "cancelled"}
    assert states["sent"] == len(received) and max(received.values()) == 1
    assert (m.sent, m.cancelled_count, m.queued) == (states["sent"], states["cancelled"], 0)


@pytest.mark.parametrize("window", [1, 3, 50])
def test_any_send_window_sends_everyone_once_through_retries_and_bounces(
    db, shop, sink, sending, window: int
) -> None:
    configuration.configure(dataclasses.replace(sending, window=window, chunk=4))
    emails = [f"w{i:02d}@example.org" for i in range(15)]
    sink.handler.transient["w03@example.org"] = 1  # 451 once, then accepted
    sink.handler.rcpt_replies["w05@example.org"] = HARD.format("w05@example.org")
    mailing_id = started_mailing(db, shop, emails)

    outcome = run_mailing(db, mailing_id)

    received = Counter(received_to(sink))
    assert outcome.status == "finished"
    assert sorted(received) == sorted(set(emails) - {"w05@example.org"}) and max(received.values()) == 1
    assert _states(db, mailing_id) == {"sent": 14, "hard_bounce": 1}
    with db.session() as session:
        m = session.get(Mailing, mailing_id)
        assert (m.sent, m.hard_bounced, m.queued, m.deferred) == (14, 1, 0, 0)
        assert session.scalar(select(func.count()).select_from(SenderWorker)) == 0


class _FailingAfter:
    """The real SMTP pool, but the run breaks (as on a bug or a lost database) after `count` results."""

    def __init__(self, pool: SmtpPool, count: int) -> None:
        self.pool, self.count = pool, count

    async def send_stream(self, jobs):
        seen = 0
        async for item in self.pool.send_stream(jobs):
            yield item
            seen += 1
            if seen == self.count:
                raise RuntimeError("the run breaks here")

    async def close(self) -> None:
        await self.pool.close()


def test_a_run_that_fails_gives_back_its_rows_claimed_ahead(db, shop, sink, sending) -> None:
    configuration.configure(dataclasses.replace(sending, window=5, chunk=10))
    emails = [f"f{i:02d}@example.org" for i in range(40)]
    mailing_id = started_mailing(db, shop, emails)
    transport = _FailingAfter(SmtpPool(list(sending.relays)), 12)

    with pytest.raises(RuntimeError, match="the run breaks here"):
        asyncio.run(MailingSender(db, mailing_id, transport=transport).run())

    states = _states(db, mailing_id)
    # Recorded outcomes stay recorded; rows claimed ahead are queued again; only the rows handed
    # over and not recorded (at most the window of 5) are left `sending`, to become `uncertain`.
    assert states["sent"] >= 12 and states["sending"] <= 5, states
    assert states["sent"] + states["sending"] + states["queued"] == len(emails)
    # What the relay took but the run did not record is among the `sending` rows.
    assert states["sent"] <= len(set(received_to(sink))) <= states["sent"] + states["sending"]
    with db.session() as session:
        uncertain = ledger.recover_orphans(session, mailing_id)
    assert uncertain == states["sending"]

    assert run_mailing(db, mailing_id).status == "finished"
    received = Counter(received_to(sink))
    with db.session() as session:
        left_uncertain = set(
            session.scalars(
                select(LedgerEntry.address).where(
                    LedgerEntry.mailing_id == mailing_id, LedgerEntry.state == "uncertain"
                )
            )
        )
    # Nobody twice; everyone but the uncertain rows (which may or may not have arrived) got it.
    assert max(received.values()) == 1 and len(left_uncertain) == uncertain
    assert set(emails) - left_uncertain <= set(received)


def test_delivered_rows_are_recorded_on_sqlite_before_update_from(db, shop, monkeypatch) -> None:
    # SQLite before 3.33 has no UPDATE ... FROM: delivered rows go through the per-row statement.
    monkeypatch.setattr(ledger, "_SQLITE_UPDATE_FROM", False)
    mailing_id = started_mailing(db, shop, ["a@example.org", "b@example.org"])
    audience_resolution.resolve(db, mailing_id)
    with db.session() as session:
        worker = ledger.register_worker(session)
        rows = ledger.claim(session, mailing_id, worker, 5).rows
    accepted = classify(250, "2.0.0 Ok: queued as X1")
    with db.session() as session:
        mailing = session.get(Mailing, mailing_id)
        outcomes = [ledger.Outcome(row, accepted, f"<{row.id}@x>") for row in rows]
        ledger.record(session, mailing, outcomes, max_attempts=3, retry_base=1)
    with db.session() as session:
        stored = session.scalars(select(LedgerEntry).where(LedgerEntry.mailing_id == mailing_id)).all()
        assert {(r.state, r.attempts, r.reply_code, r.claimed_by) for r in stored} == {("sent", 1, 250, None)}
        assert all(r.sent_at is not None and r.message_ref == f"<{r.id}@x>" for r in stored)
        assert session.get(Mailing, mailing_id).sent == 2
