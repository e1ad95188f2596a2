"""kill -9 an SMS sender mid-mailing, restart it: nobody twice, nobody skipped, in-flight rows uncertain."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import select

from missiva.delivery import mailings
from missiva.delivery.models import LedgerEntry, Mailing
from missiva.messages import service as messages

from .conftest import PeerProcess, add_smpp_transport, subscribe_mobiles

SRC = str(Path(__file__).resolve().parents[2] / "src")
RUN = "import sys; from missiva import runtime; from missiva.delivery.sender import run_mailing; "
RUN += "print(run_mailing(runtime.database(), int(sys.argv[1])).status)"
CHUNK = 10
CONCURRENCY = 4


@pytest.fixture
def slow_peer(tmp_path: Path):
    """An SMSC that takes 5 ms to answer each submit_sm, so a kill lands mid-mailing."""
    peer = PeerProcess(tmp_path / "peer.jsonl", "--password", "secret", "--stall", "0.005")
    yield peer
    peer.stop()


def _sender(settings, mailing_id: int) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "PYTHONPATH": SRC,
        "MISSIVA_DATABASE_URL": settings.database_url,
        "MISSIVA_DATA_DIR": str(settings.data_dir),
        "MISSIVA_SECRET_KEY": settings.secret_key,  # decrypts the transport's password
        "MISSIVA_SEND_CHUNK": str(CHUNK),
        "MISSIVA_SMS_CONCURRENCY": str(CONCURRENCY),
        "MISSIVA_SMS_RECEIPT_WAIT": "1",
        "MISSIVA_HUEY_IMMEDIATE": "1",
    }
    return subprocess.Popen([sys.executable, "-c", RUN, str(mailing_id)], env=env, stdout=subprocess.PIPE)


def test_sigkill_mid_sms_mailing_then_restart_sends_everyone_once(
    settings, client, db, sms_shop, slow_peer: PeerProcess
) -> None:
    numbers = [f"+39333{n:06d}1" for n in range(120)]
    add_smpp_transport(client, sms_shop, slow_peer)
    subscribe_mobiles(db, sms_shop, numbers)
    previous = mailings._enqueue
    mailings.set_enqueuer(lambda _mailing_id: None)
    try:
        with db.session() as session:
            message = messages.create(
                session, sms_shop["id"], sms_shop["list_id"], {"channel": "sms", "text": "Offerta [nome|]"}
            )
            mailing = mailings.create(session, sms_shop["id"], {"message_id": message.id})
            mailings.start(session, sms_shop["id"], mailing.id)
            mailing_id = mailing.id
    finally:
        mailings.set_enqueuer(previous)

    first = _sender(settings, mailing_id)
    deadline = time.monotonic() + 30
    while len(slow_peer.records()) < 30:
        assert first.poll() is None, "the sender finished before it could be killed"
        assert time.monotonic() < deadline
        time.sleep(0.01)
    first.send_signal(signal.SIGKILL)
    first.wait(10)
    assert len(slow_peer.records()) < len(numbers)

    second = _sender(settings, mailing_id)
    out, _ = second.communicate(timeout=60)
    assert second.returncode == 0 and out.strip() == b"finished"

    received = Counter("+" + str(r["dest"]) for r in slow_peer.records())
    with db.session() as session:
        rows = {
            r.address: r.state
            for r in session.scalars(select(LedgerEntry).where(LedgerEntry.mailing_id == mailing_id))
        }
        counters = session.get(Mailing, mailing_id)
    assert set(rows) == set(numbers)
    assert set(rows.values()) <= {"sent", "uncertain"}
    assert max(received.values()) == 1, "a number got the message twice"
    for number, state in rows.items():
        if state == "sent":
            assert received[number] == 1, number
    uncertain = [n for n, state in rows.items() if state == "uncertain"]
    # In flight at the kill: the claimed chunks, never the whole rest of the mailing.
    assert 0 < len(uncertain) <= 2 * CHUNK + CONCURRENCY
    assert counters.sent == len(numbers) - len(uncertain) and counters.uncertain == len(uncertain)
    assert counters.queued == 0 and counters.status == "finished"
    # Receipts of the first run's messages reached the second run's bind, or were applied with its parts.
    assert counters.delivered == counters.sent
