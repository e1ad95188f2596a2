"""Classification -> actions over the whole bounce corpus, idempotency, soft-bounce threshold, tenancy."""

from __future__ import annotations

import dataclasses
import json
from datetime import timedelta
from pathlib import Path

from sqlalchemy import select, update

from missiva.db import utcnow
from missiva.delivery import suppression, unsubscribe_tokens
from missiva.delivery.models import LedgerEntry, Mailing
from missiva.inbound import processor
from missiva.inbound.models import InboundMessage
from missiva.inbound.processor import process_message

from .conftest import BOUNCE_DOMAIN, seed_account, seed_sent, subscription_of, unsubscribe_events

DATA = Path(__file__).parent.parent / "data" / "bounces"
EXPECTED = json.loads((DATA / "expected.json").read_text())


def _dsn(recipient: str, status: str = "5.1.1", diagnostic: str = "550 5.1.1 User unknown", **extra) -> bytes:
    action = "delayed" if status.startswith("4") else "failed"
    headers = "".join(f"{k}: {v}\r\n" for k, v in extra.items())
    return (
        "From: MAILER-DAEMON@mx.example.net\r\nTo: bounces@bounces.example.com\r\n"
        "Subject: Undelivered Mail Returned to Sender\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="R"\r\n\r\n'
        "--R\r\nContent-Type: text/plain\r\n\r\nDelivery failed.\r\n"
        "--R\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example.net\r\n\r\n"
        f"Final-Recipient: rfc822; {recipient}\r\nAction: {action}\r\nStatus: {status}\r\n"
        f"Diagnostic-Code: smtp; {diagnostic}\r\n"
        f"--R\r\nContent-Type: text/rfc822-headers\r\n\r\n{headers}Subject: News\r\n\r\n--R--\r\n"
    ).encode()


def _process(db, settings, raw: bytes, rcpts: list[str]):
    with db.session() as session:
        return process_message(session, raw, rcpts, settings=settings)


def test_every_corpus_message_leads_to_the_action_of_its_kind(db, inbound_settings) -> None:
    account_id, list_id = seed_account(db)
    names = sorted(EXPECTED)
    addresses = [f"c{i}@corpus.example.org" for i in range(len(names))]
    sent = seed_sent(db, account_id, list_id, addresses)
    by_kind: dict[str, set[str]] = {}

    for name, address in zip(names, addresses, strict=True):
        raw = (DATA / name).read_bytes()
        result = _process(db, inbound_settings, raw, [sent.verp(address, inbound_settings)])
        assert not result.duplicate, name
        by_kind.setdefault(EXPECTED[name]["kind"], set()).add(address)

    assert {k: len(v) for k, v in by_kind.items()} == {
        "hard": 76,
        "soft": 87,
        "complaint": 10,
        "autoreply": 6,
        "unknown": 4,
        "unsubscribe": 2,
    }
    events = unsubscribe_events(db, account_id)
    assert events == (
        {a: ("hard_bounce", sent.mailing_id) for a in by_kind["hard"]}
        | {a: ("complaint", sent.mailing_id) for a in by_kind["complaint"]}
        | {a: ("list_unsubscribe", sent.mailing_id) for a in by_kind["unsubscribe"]}
    )
    with db.session() as session:
        suppressed = {s.address: s.reason for s in suppression.page(session, account_id, limit=1000)}
        assert suppressed == (
            {a: "hard_bounce" for a in by_kind["hard"]}
            | {a: "complaint" for a in by_kind["complaint"]}
            | {a: "list_unsubscribe" for a in by_kind["unsubscribe"]}
        )
        rows = {r.address: r for r in session.scalars(select(LedgerEntry))}
        for name, address in zip(names, addresses, strict=True):
            want = EXPECTED[name]
            if want["kind"] == "hard":
                assert (rows[address].state, rows[address].reply_status) == ("hard_bounce", want["status"])
            else:
                assert rows[address].state == "sent", name
        mailing = session.get(Mailing, sent.mailing_id)
        assert (mailing.sent, mailing.hard_bounced) == (len(addresses) - 76, 76)
        assert (mailing.soft_bounced, mailing.complaints) == (87, 10)
        actions = {
            kind: action
            for kind, action in session.execute(select(InboundMessage.kind, InboundMessage.action).distinct())
        }
    # an ARF opt-out report and Apple Mail's unsubscribe mail, about a message the VERP names
    assert actions == {
        "hard": "suppressed",
        "complaint": "suppressed",
        "soft": "counted",
        "autoreply": "recorded",
        "unknown": "recorded",
        "unsubscribe": "unsubscribed",
    }
    for address in by_kind["soft"] | by_kind["autoreply"] | by_kind["unknown"]:
        assert subscription_of(db, account_id, address) == ("subscribed", None)

    # The same messages again (one of each kind): nothing changes.
    again = {EXPECTED[name]["kind"]: (name, address) for name, address in zip(names, addresses, strict=True)}
    for name, address in again.values():
        raw = (DATA / name).read_bytes()
        assert _process(db, inbound_settings, raw, [sent.verp(address, inbound_settings)]).duplicate
    with db.session() as session:
        mailing = session.get(Mailing, sent.mailing_id)
        assert (mailing.hard_bounced, mailing.soft_bounced, mailing.complaints) == (76, 87, 10)
        assert session.scalar(select(InboundMessage.id).order_by(InboundMessage.id.desc())) == len(names)
    assert len(unsubscribe_events(db, account_id)) == 88


def test_soft_bounces_suppress_at_the_configured_count_of_mailings_within_the_window(
    db, inbound_settings
) -> None:
    settings = dataclasses.replace(inbound_settings, soft_bounce_limit=3, soft_bounce_days=14)
    account_id, list_id = seed_account(db)
    mailings = [seed_sent(db, account_id, list_id, ["full@example.org"]) for _ in range(4)]

    def soft(sent, n: int) -> str:
        raw = _dsn("full@example.org", "4.2.2", f"452 4.2.2 Mailbox full (try {n})")
        return _process(db, settings, raw, [sent.verp("full@example.org", settings)]).action.value

    # Two reports about the same message (delayed, then delayed again) are one soft bounce.
    assert [soft(mailings[0], 1), soft(mailings[0], 2), soft(mailings[1], 3)] == ["counted"] * 3
    assert subscription_of(db, account_id, "full@example.org") == ("subscribed", None)
    with db.session() as session:  # the first one is now older than the window
        session.execute(
            update(InboundMessage)
            .where(InboundMessage.mailing_id == mailings[0].mailing_id)
            .values(received_at=utcnow() - timedelta(days=15))
        )
    assert soft(mailings[2], 4) == "counted"
    assert soft(mailings[3], 5) == "soft_limit"

    assert subscription_of(db, account_id, "full@example.org") == ("unsubscribed", "soft_bounces")
    with db.session() as session:
        assert suppression.find(session, account_id, "full@example.org").reason == "soft_bounces"
        assert session.get(Mailing, mailings[0].mailing_id).soft_bounced == 1


def test_a_mail_to_the_list_unsubscribe_address_unsubscribes_with_a_genuine_token(
    db, inbound_settings
) -> None:
    account_id, list_id = seed_account(db)
    sent = seed_sent(db, account_id, list_id, ["anna@example.org", "bruno@example.org"])
    token = unsubscribe_tokens.make(sent.mailing_id, sent.recipients["anna@example.org"])
    forged = unsubscribe_tokens.make(sent.mailing_id, sent.recipients["bruno@example.org"], key=b"guess")
    body = b"From: Anna <anna@example.org>\r\nSubject: please\r\n\r\n"

    good = _process(db, inbound_settings, body, [f"unsubscribe+{token}@{BOUNCE_DOMAIN}"])
    bad = _process(db, inbound_settings, body + b"x", [f"unsubscribe+{forged}@{BOUNCE_DOMAIN}"])

    assert (good.action.value, bad.action.value) == ("unsubscribed", "unattributed")
    assert subscription_of(db, account_id, "anna@example.org") == ("unsubscribed", "list_unsubscribe")
    assert subscription_of(db, account_id, "bruno@example.org") == ("subscribed", None)
    with db.session() as session:
        assert suppression.find(session, account_id, "anna@example.org").reason == "list_unsubscribe"


def test_unsigned_ids_only_act_on_the_address_the_message_was_sent_to(db, inbound_settings) -> None:
    a_account, a_list = seed_account(db, "Shop A")
    b_account, b_list = seed_account(db, "Shop B")
    a = seed_sent(db, a_account, a_list, ["anna@example.org"])
    b = seed_sent(db, b_account, b_list, ["victim@example.org", "anna@example.org"])
    hint = {"X-Missiva-Mailing": a.mailing_id, "X-Missiva-Recipient": a.recipients["anna@example.org"]}

    # A forger names account A's mailing and recipient in plain headers but bounces B's address.
    forged = _process(db, inbound_settings, _dsn("victim@example.org", **hint), ["abuse@" + BOUNCE_DOMAIN])
    # The same hint with the address it was really sent to is believed.
    real = _process(db, inbound_settings, _dsn("anna@example.org", **hint), ["abuse@" + BOUNCE_DOMAIN])

    assert (forged.action.value, real.action.value) == ("unattributed", "suppressed")
    assert real.account_id == a_account
    assert subscription_of(db, a_account, "anna@example.org") == ("unsubscribed", "hard_bounce")
    # Account B shares the address but its list and suppression list are untouched.
    assert subscription_of(db, b_account, "anna@example.org") == ("subscribed", None)
    assert subscription_of(db, b_account, "victim@example.org") == ("subscribed", None)
    with db.session() as session:
        assert suppression.count(session, b_account) == 0
        assert session.get(Mailing, b.mailing_id).hard_bounced == 0


def test_a_verp_bounce_names_the_recipient_even_when_the_report_shows_a_forwarded_address(
    db, inbound_settings
) -> None:
    account_id, list_id = seed_account(db)
    sent = seed_sent(db, account_id, list_id, ["old@example.org"])
    raw = _dsn("new-mailbox@forward.example.net")

    result = _process(db, inbound_settings, raw, [sent.verp("old@example.org", inbound_settings)])

    assert (result.action.value, result.address) == ("suppressed", "old@example.org")
    assert subscription_of(db, account_id, "old@example.org") == ("unsubscribed", "hard_bounce")


def test_a_message_that_breaks_processing_is_set_aside_and_the_rest_goes_on(
    db, inbound_settings, monkeypatch
) -> None:
    from missiva.inbound import spool

    account_id, list_id = seed_account(db)
    sent = seed_sent(db, account_id, list_id, ["dead@example.org"])
    spool.store(inbound_settings, b"Subject: poison\r\n\r\nx\r\n", ["fbl@" + BOUNCE_DOMAIN])
    spool.store(inbound_settings, _dsn("dead@example.org"), [sent.verp("dead@example.org", inbound_settings)])
    real = processor.notification

    def flaky(raw, *args, **kwargs):
        if b"poison" in raw:
            raise RuntimeError("classifier bug")
        return real(raw, *args, **kwargs)

    monkeypatch.setattr(processor, "notification", flaky)
    summary = processor.process_pending(inbound_settings, db)

    assert (summary.processed, summary.failed, dict(summary.actions)) == (1, 1, {"suppressed": 1})
    assert list(spool.pending(inbound_settings)) == []
    failed = [p.read_bytes() for p in (spool.spool_path(inbound_settings) / "failed").iterdir()]
    assert len(failed) == 1 and failed[0].endswith(b"Subject: poison\r\n\r\nx\r\n")
