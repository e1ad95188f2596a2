"""kill -9 a sender mid-mailing, restart it: nobody twice, nobody skipped, in-flight rows uncertain."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from sqlalchemy import func, select

from missiva.delivery import mailings
from missiva.delivery.models import LedgerEntry, Mailing
from missiva.messages import service as messages

from .conftest import received_to, subscribe_many

SRC = str(Path(__file__).resolve().parents[2] / "src")
RUN = "import sys; from missiva import runtime; from missiva.delivery.sender import run_mailing; "
RUN += "print(run_mailing(runtime.database(), int(sys.argv[1])).status)"


def _sender(settings, sink, mailing_id: int, **extra: str) -> subprocess.Popen[bytes]:
    """`run_mailing` in a process of its own (chunk of 10 rows unless `extra` says otherwise)."""
    env = {
        **os.environ,
        "PYTHONPATH": SRC,
        "MISSIVA_DATABASE_URL": settings.database_url,
        "MISSIVA_DATA_DIR": str(settings.data_dir),
        "MISSIVA_SECRET_KEY": settings.secret_key,
        "MISSIVA_BASE_URL": "https://missiva.test",
        "MISSIVA_SMTP_URL": f"{sink.url()}#max=4",
        "MISSIVA_SEND_CHUNK": "10",
        "MISSIVA_HUEY_IMMEDIATE": "1",
        **extra,
    }
    return subprocess.Popen([sys.executable, "-c", RUN, str(mailing_id)], env=env, stdout=subprocess.PIPE)


def test_sigkill_mid_mailing_then_restart_sends_everyone_once(settings, db, shop, sink) -> None:
    emails = [f"r{i:03d}@example.org" for i in range(300)]
    subscribe_many(db, shop["id"], shop["list_id"], emails)
    sink.handler.stall_on_data = 0.004  # a slow relay so the kill lands mid-mailing
    previous = mailings._enqueue
    mailings.set_enqueuer(lambda _mailing_id: None)
    try:
        with db.session() as session:
            message = messages.create(
                session, shop["id"], shop["list_id"], {"subject": "Hi", "text": "Hello [email]"}
            )
            mailing = mailings.create(session, shop["id"], {"message_id": message.id})
            mailings.start(session, shop["id"], mailing.id)
            mailing_id = mailing.id
    finally:
        mailings.set_enqueuer(previous)

    first = _sender(settings, sink, mailing_id, MISSIVA_SEND_WINDOW="8")
    deadline = time.monotonic() + 30
    while len(sink.handler.received) < 60:
        assert first.poll() is None, "the sender finished before it could be killed"
        assert time.monotonic() < deadline
        time.sleep(0.01)
    first.send_signal(signal.SIGKILL)
    first.wait(10)
    delivered_before_restart = len(sink.handler.received)
    assert delivered_before_restart < len(emails)
    with db.session() as session:
        claimed_at_kill = session.scalar(
            select(func.count()).where(LedgerEntry.mailing_id == mailing_id, LedgerEntry.state == "sending")
        )

    second = _sender(settings, sink, mailing_id)
    out, _ = second.communicate(timeout=60)
    assert second.returncode == 0 and out.strip() == b"finished"

    received = Counter(received_to(sink))
    with db.session() as session:
        rows = {
            r.address: r.state
            for r in session.scalars(select(LedgerEntry).where(LedgerEntry.mailing_id == mailing_id))
        }
        counters = session.get(Mailing, mailing_id)
    assert set(rows) == set(emails)
    uncertain = [a for a, state in rows.items() if state == "uncertain"]
    assert set(rows.values()) <= {"sent", "uncertain"}
    for address, state in rows.items():
        if state == "sent":
            assert received[address] == 1, address
        else:
            assert received[address] <= 1, address
    assert max(received.values()) == 1
    # In flight at the kill: at most the send window (8); the rows claimed ahead of it went back to
    # the queue and were sent after the restart.
    assert 0 < len(uncertain) <= 8 and len(uncertain) <= claimed_at_kill
    assert counters.sent == len(emails) - len(uncertain) and counters.uncertain == len(uncertain)
    assert counters.queued == 0


def test_operator_resends_uncertain_rows(client, db, shop, sink) -> None:
    subscribe_many(db, shop["id"], shop["list_id"], ["a@example.org", "b@example.org"])
    with db.session() as session:
        message = messages.create(session, shop["id"], shop["list_id"], {"subject": "Hi", "text": "Hello"})
        mailing = mailings.create(session, shop["id"], {"message_id": message.id})
        mailing_id = mailing.id
    client.post(f"/api/v1/mailings/{mailing_id}/start", headers=shop["headers"])
    with db.session() as session:  # as a crash would leave it: one row's fate unknown
        row = session.scalars(select(LedgerEntry).where(LedgerEntry.address == "b@example.org")).one()
        row.state = "uncertain"
        m = session.get(Mailing, mailing_id)
        m.sent, m.uncertain = 1, 1
    sink.handler.reset()

    response = client.post(f"/api/v1/mailings/{mailing_id}/resend-uncertain", headers=shop["headers"])

    assert response.status_code == 200, response.text
    assert response.json()["counters"]["uncertain"] == 0 and response.json()["counters"]["sent"] == 2
    assert received_to(sink) == ["b@example.org"]


def test_two_sender_processes_share_a_mailing_without_double_sends(settings, db, shop, sink) -> None:
    emails = [f"w{i:03d}@example.org" for i in range(200)]
    subscribe_many(db, shop["id"], shop["list_id"], emails)
    sink.handler.stall_on_data = 0.002
    previous = mailings._enqueue
    mailings.set_enqueuer(lambda _mailing_id: None)
    try:
        with db.session() as session:
            message = messages.create(
                session, shop["id"], shop["list_id"], {"subject": "Hi", "text": "Hello"}
            )
            mailing = mailings.create(session, shop["id"], {"message_id": message.id})
            mailings.start(session, shop["id"], mailing.id)
            mailing_id = mailing.id
    finally:
        mailings.set_enqueuer(previous)

    workers = [_sender(settings, sink, mailing_id) for _ in range(2)]
    for worker in workers:
        worker.communicate(timeout=60)
        assert worker.returncode == 0

    assert sorted(received_to(sink)) == emails
    with db.session() as session:
        m = session.get(Mailing, mailing_id)
        assert (m.status, m.sent, m.queued, m.uncertain) == ("finished", 200, 0, 0)
