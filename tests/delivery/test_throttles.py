"""Throttles against a real SMTP server: per mailing (minute, hour), per destination domain, per relay."""

from __future__ import annotations

import dataclasses
import time
from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from missiva.delivery import audience_resolution, configuration, ledger
from missiva.delivery.models import LedgerEntry, Mailing
from missiva.delivery.sender import SHORT_WAIT, run_mailing

from .conftest import received_to, started_mailing

pytestmark = pytest.mark.usefixtures("no_sender_queued")


def _clear_of_window_end(length: int) -> None:
    """Start well inside a throttle window, so the test's sends all fall in the same one."""
    left = length - time.time() % length
    if left < SHORT_WAIT + 5:
        time.sleep(left + 0.1)


def test_per_hour_budget_stops_the_run_until_the_next_window(db, shop, sink) -> None:
    _clear_of_window_end(3600)
    mailing_id = started_mailing(db, shop, [f"h{i}@example.org" for i in range(8)], per_hour=5)

    outcome = run_mailing(db, mailing_id)

    assert len(received_to(sink)) == 5
    assert outcome.status == "running" and outcome.resume_at is not None
    assert outcome.resume_at.minute == 0 and outcome.resume_at > datetime.now(UTC)
    with db.session() as session:
        counters = session.get(Mailing, mailing_id)
        assert (counters.sent, counters.queued) == (5, 3)


def test_per_domain_budget_postpones_only_the_busy_domain(db, shop, sink) -> None:
    _clear_of_window_end(60)
    busy = [f"d{i}@busy.example" for i in range(5)]
    quiet = [f"d{i}@quiet.example" for i in range(2)]
    mailing_id = started_mailing(db, shop, busy + quiet, per_domain_per_minute=2)

    outcome = run_mailing(db, mailing_id)

    got = received_to(sink)
    assert sorted(a for a in got if a.endswith("@quiet.example")) == quiet
    assert len([a for a in got if a.endswith("@busy.example")]) == 2
    assert outcome.status == "running" and outcome.resume_at is not None


def test_relay_rate_from_the_smtp_url_paces_a_mailing(db, shop, sink, sending) -> None:
    env = {"MISSIVA_SMTP_URL": f"{sink.url()}#rate=20/s&max=4"}
    configuration.configure(dataclasses.replace(sending, relays=configuration.from_env(env).relays))
    emails = [f"r{i:02d}@example.org" for i in range(30)]
    mailing_id = started_mailing(db, shop, emails)

    outcome = run_mailing(db, mailing_id)

    assert outcome.status == "finished" and sorted(received_to(sink)) == emails
    arrivals = sorted(message.at for message in sink.handler.received)
    # 20/s with a burst of 2: at least (30 - 2) / 20 = 1.4 s from first to last (0.2 s off for jitter).
    assert arrivals[-1] - arrivals[0] >= 1.2


def test_per_domain_budget_is_shared_by_the_senders_of_a_mailing(db, shop) -> None:
    _clear_of_window_end(60)
    emails = [f"s{i}@busy.example" for i in range(6)] + ["t0@quiet.example"]
    mailing_id = started_mailing(db, shop, emails, per_domain_per_minute=3)
    audience_resolution.resolve(db, mailing_id)  # the ledger rows the senders claim

    kept = []
    for worker in ("sender-a", "sender-b", "sender-c"):  # three processes, each with its own budget object
        with db.session() as session:
            claim = ledger.claim(session, mailing_id, worker, 3, domain_budget=ledger.DomainBudget(3))
            kept += [row.address for row in claim.rows]

    # Together they took 3 of busy.example this minute (not 3 each) and the quiet domain's one.
    assert sorted(a for a in kept if a.endswith("@busy.example")) == [f"s{i}@busy.example" for i in range(3)]
    assert "t0@quiet.example" in kept
    with db.session() as session:
        waiting = session.scalars(
            select(LedgerEntry.address).where(
                LedgerEntry.mailing_id == mailing_id, LedgerEntry.next_attempt_at.is_not(None)
            )
        ).all()
    assert sorted(waiting) == [f"s{i}@busy.example" for i in range(3, 6)]  # postponed to the next minute
