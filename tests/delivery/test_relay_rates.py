"""A relay's rate (``#rate=`` in MISSIVA_SMTP_URL) holds for all senders sharing the database.

Senders here are separate pools (each with its own event loop in its own thread, as separate processes
would have) that share only the database, sending into a real SMTP server. The bound checked is the
documented one: over T seconds at most ``rate * T + 2 * burst`` messages, T measured from before the
first send to after the last reply, so a slow machine only loosens it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import threading
import time
from collections.abc import Callable, Iterator

import pytest
from sqlalchemy import select

from missiva import migrate
from missiva.db import get_database
from missiva.delivery import audience_resolution, configuration, mailings
from missiva.delivery.models import Mailing, RelayRate
from missiva.delivery.relay_rates import DatabaseSlots
from missiva.delivery.sender import run_mailing
from missiva.delivery.smtp import Relay, SendJob, SendStatus, SmtpPool
from missiva.delivery.smtp.rate import SharedRateLimiter, burst_of, relay_key, schedule
from missiva.messages import service as messages

from .conftest import received_to, subscribe_many

RATE = 20.0  # messages/s; burst 2, so the documented slack is 4 messages
SLACK = 2 * burst_of(RATE)


@pytest.fixture(autouse=True)
def _sender_run_by_the_test(monkeypatch: pytest.MonkeyPatch) -> None:
    """Starting a mailing queues no sender: the test runs its senders itself."""
    monkeypatch.setattr(mailings, "_enqueue", None)


def _in_threads(*targets: Callable[[], object]) -> list[object]:
    """Run each target in its own thread (each with its own event loop, like a process); their results."""
    results: list[object] = [None] * len(targets)
    errors: list[BaseException] = []

    def run(index: int, target: Callable[[], object]) -> None:
        try:
            results[index] = target()
        except BaseException as exc:  # re-raised in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=run, args=item) for item in enumerate(targets)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    if errors:
        raise errors[0]
    return results


def _jobs_until(deadline: float, tag: str) -> Iterator[SendJob]:
    """As many jobs as the pool takes until `deadline` (monotonic): a sender that always has work."""
    index = 0
    while time.monotonic() < deadline:
        yield SendJob("news@shop.example", f"{tag}{index}@example.org", b"Subject: hi\r\n\r\nhello\r\n")
        index += 1


def test_two_pools_sharing_the_database_send_the_relay_rate_together_not_each(db, sink) -> None:
    relay = Relay(sink.url(), max_connections=2, rate=RATE)
    start = time.monotonic()
    deadline = start + 1.5

    def sender(tag: str) -> Callable[[], list[SendStatus]]:
        async def run() -> list[SendStatus]:
            async with SmtpPool([relay], slot_source=DatabaseSlots(db)) as pool:
                return [result.status async for _, result in pool.send_stream(_jobs_until(deadline, tag))]

        return lambda: asyncio.run(run())

    first, second = _in_threads(sender("a"), sender("b"))
    elapsed = time.monotonic() - start

    received = received_to(sink)
    assert first and second  # both senders got slots
    assert set(first) | set(second) == {SendStatus.SENT}
    assert len(received) == len(first) + len(second)
    # Alone, each pool would send about 1.5 s x 20/s = 30: together about 60, far above the bound.
    assert len(received) <= RATE * elapsed + SLACK


def test_two_senders_of_one_mailing_keep_the_relay_rate_of_the_smtp_url(db, shop, sink, sending) -> None:
    env = {"MISSIVA_SMTP_URL": f"{sink.url()}#rate=20/s&max=2"}
    configuration.configure(dataclasses.replace(sending, relays=configuration.from_env(env).relays, chunk=4))
    emails = [f"p{i:02d}@example.org" for i in range(30)]
    subscribe_many(db, shop["id"], shop["list_id"], emails)
    with db.session() as session:
        message = messages.create(session, shop["id"], shop["list_id"], {"subject": "Hi", "text": "Hello"})
        mailing_id = mailings.create(session, shop["id"], {"message_id": message.id}).id
        mailings.start(session, shop["id"], mailing_id)
    audience_resolution.resolve(db, mailing_id)
    start = time.monotonic()

    runs = _in_threads(lambda: run_mailing(db, mailing_id), lambda: run_mailing(db, mailing_id))
    elapsed = time.monotonic() - start

    assert sorted(received_to(sink)) == emails
    assert all(run.sent > 0 for run in runs)  # type: ignore[attr-defined]
    # Each sender alone at 20/s would have sent the 30 in about 0.75 s (and 30 > 20 x 0.75 + 4).
    assert len(emails) <= RATE * elapsed + SLACK
    with db.session() as session:
        assert session.get(Mailing, mailing_id).sent == 30


def test_concurrent_reservations_never_hand_out_more_than_the_horizon_holds(db) -> None:
    """Eight threads reserve on one schedule at the same instant: exactly the slots up to the horizon
    exist, each granted once (a lost update would hand some out twice)."""
    slots = DatabaseSlots(db)
    now, interval, horizon = 1_800_000_000_000_000, 1_000, 100_000  # µs: room for 101 slots
    granted: list[list[int]] = [[] for _ in range(8)]

    def reserve(mine: list[int]) -> Callable[[], None]:
        def run() -> None:
            for _ in range(10):
                grant = slots.reserve("relay.example.com:25 1000/s", 3, interval, horizon, now)
                assert grant.count <= 3
                mine.extend(grant.first + i * interval for i in range(grant.count))

        return run

    _in_threads(*(reserve(mine) for mine in granted))

    every = sorted(slot for mine in granted for slot in mine)
    assert every == [now + i * interval for i in range(101)]
    assert sum(1 for mine in granted if mine) > 1  # the slots were contended for, not taken by one


def test_a_reservation_resumes_the_schedule_where_another_process_left_it(db) -> None:
    first, second = DatabaseSlots(db), DatabaseSlots(db)
    key, now = "relay.example.com:25 10/s", 1_800_000_000_000_000

    a = first.reserve(key, 2, 100_000, 1_000_000, now)
    b = second.reserve(key, 5, 100_000, 1_000_000, now)
    c = second.reserve(key, 20, 100_000, 1_000_000, now)
    later = first.reserve(key, 1, 100_000, 1_000_000, now + 60_000_000)

    assert (a.first, a.count) == (now, 2)
    assert (b.first, b.count) == (now + 200_000, 5)
    assert (c.first, c.count) == (now + 700_000, 4)  # partial: only up to now + 1 s
    assert (later.first, later.count) == (now + 60_000_000, 1)  # idle time is not saved up


def test_the_stored_relay_key_never_contains_the_login(db) -> None:
    relay = Relay("smtps://mailer:s3cret%20pass@Smtp.Example.com:465", rate=5.0)
    other_login = Relay("smtps://billing:s3cret%20pass@smtp.example.com:465", rate=5.0)
    limiter = SharedRateLimiter(relay_key(relay), 5.0, DatabaseSlots(db))

    asyncio.run(limiter.take())

    with db.session() as session:
        (stored,) = session.scalars(select(RelayRate.relay_key)).all()
    assert stored.startswith("smtp.example.com:465/") and stored.endswith(" 5/s")
    assert "mailer" not in stored and "s3cret" not in stored
    assert relay_key(other_login) != stored  # two logins at one provider: two limits
    assert relay_key(Relay("smtps://mailer:other@smtp.example.com:465", rate=5.0)) == stored


@pytest.mark.parametrize(
    ("key", "wanted", "interval", "horizon", "message"),
    [
        ("", 1, 1000, 1000, "relay key must be 1 to 255"),
        ("x" * 256, 1, 1000, 1000, "relay key must be 1 to 255 characters, got 256"),
        ("relay:25", 0, 1000, 1000, "wanted must be at least 1"),
        ("relay:25", 1, 0, 1000, "interval must be at least 1"),
        ("relay:25", 1, 1000, 999, r"horizon \(999 µs\) must be at least one interval"),
    ],
)
def test_a_bad_reservation_is_refused_naming_what_is_wrong(
    db, key, wanted, interval, horizon, message
) -> None:
    with pytest.raises(ValueError, match=message):
        DatabaseSlots(db).reserve(key, wanted, interval, horizon, 1_800_000_000_000_000)
    with db.session() as session:
        assert session.scalars(select(RelayRate)).all() == []


def test_schedule_edges() -> None:
    # Booked beyond the horizon: nothing granted, the schedule unchanged, `first` says when it frees.
    grant, tat = schedule(tat=5_000, now=1_000, wanted=3, interval=1_000, horizon=3_000)
    assert (grant.count, grant.first, tat) == (0, 5_000, 5_000)
    # Exactly at the horizon: one slot.
    grant, tat = schedule(tat=4_000, now=1_000, wanted=3, interval=1_000, horizon=3_000)
    assert (grant.count, grant.first, tat) == (1, 4_000, 5_000)


def test_a_relay_without_a_rate_has_no_schedule() -> None:
    with pytest.raises(ValueError, match="has no rate"):
        relay_key(Relay("smtp://relay.example.com:25"))


def test_while_the_database_cannot_reserve_slots_the_relay_gets_nothing(sink, tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'not-yet-migrated.db'}"  # no relay_rates table: every reservation fails
    relay = Relay(sink.url(), rate=RATE)

    async def run() -> SendStatus:
        async with SmtpPool([relay], slot_source=DatabaseSlots(get_database(url))) as pool:
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(pool.send("news@shop.example", "early@example.org", b"\r\n"), 0.5)
            assert received_to(sink) == []  # not sent past the rate for want of a schedule
            await asyncio.to_thread(migrate.upgrade, url)  # the database is back
            result = await asyncio.wait_for(pool.send("news@shop.example", "later@example.org", b"\r\n"), 30)
            return result.status

    assert asyncio.run(run()) == SendStatus.SENT
    assert received_to(sink) == ["later@example.org"]
