"""End to end: a mailing goes out through the delivery engine, the sink accepts everything, and then
the bounces, a feedback-loop complaint and an unsubscribe mail come back to the inbound receiver by SMTP.
The customer's CRM gets each unsubscription by signed webhook, with its reason.

The DSNs are real samples of the corpus with the recipient replaced by ours, sent to the VERP return
path the sender actually used for that recipient (read from the sink's MAIL FROM).
"""

from __future__ import annotations

import csv
import dataclasses
import email
import email.policy
import io
import json
import re
import smtplib
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select
from standardwebhooks.webhooks import Webhook

from missiva import runtime
from missiva.audience.models import AudienceEvent
from missiva.delivery import suppression
from missiva.delivery.models import LedgerEntry
from missiva.inbound import spool
from missiva.inbound.receiver import Receiver
from missiva.jobs import enqueue_inbound, run_webhook_dispatcher
from tests.delivery.conftest import received_to, subscribe_many
from tests.events.conftest import Receiver as HttpReceiver

from .conftest import BOUNCE_DOMAIN, subscription_of

DATA = Path(__file__).parent.parent / "data" / "bounces"
PEOPLE = ["good@example.org", "full@example.org", "dead1@example.org", "dead2@example.org"]
PEOPLE += ["angry@example.org", "leaving@example.org"]


@pytest.fixture
def crm() -> Iterator[HttpReceiver]:
    """The customer's webhook endpoint (a real HTTP server)."""
    server = HttpReceiver().start()
    yield server
    server.stop()


@pytest.fixture
def receiver(sending) -> Iterator[tuple[str, int]]:
    """The inbound receiver of the running installation: processing queued (inline in tests) per message."""
    settings = dataclasses.replace(runtime.settings(), bounce_domain=BOUNCE_DOMAIN)
    runtime.configure(settings)
    rx = Receiver(settings, enqueue_inbound, port=0)
    yield rx.start()
    rx.stop()


def _mailing(client, shop) -> dict:
    message = client.post(
        f"/api/v1/lists/{shop['list_id']}/messages",
        headers=shop["headers"],
        json={"subject": "News", "text": "Hello"},
    ).json()
    created = client.post(
        "/api/v1/mailings", headers=shop["headers"], json={"message_id": message["id"], "start": True}
    )
    assert created.status_code == 201, created.text
    return created.json()


def _sent_to(sink, address: str):
    return next(m for m in sink.handler.received if address in m.rcpt_tos)


def _from_sample(name: str, ours: str) -> bytes:
    """A corpus sample about `ours` instead of the address it was about."""
    theirs = json.loads((DATA / "expected.json").read_text())[name]["recipient"]
    return (DATA / name).read_bytes().replace(theirs.encode(), ours.encode())


def _deliver(address: tuple[str, int], rcpt: str, raw: bytes) -> None:
    with smtplib.SMTP(*address, timeout=10) as client:
        client.sendmail("", [rcpt], raw)


def test_bounces_complaints_and_unsubscribe_mails_flow_back_to_the_audience(
    client, db, shop, sink, receiver, crm
) -> None:
    hook = client.post(
        "/api/v1/webhooks",
        headers=shop["headers"],
        json={"url": crm.url(), "event_types": ["subscription.unsubscribed"]},
    )
    assert hook.status_code == 201, hook.text
    subscribe_many(db, shop["id"], shop["list_id"], PEOPLE)
    first = _mailing(client, shop)
    assert sorted(received_to(sink)) == sorted(PEOPLE)  # the sink accepted everyone

    for dead, sample in [("dead1", "sisimai-lhost-postfix-01.eml"), ("dead2", "sisimai-lhost-exim-02.eml")]:
        address = f"{dead}@example.org"
        _deliver(receiver, _sent_to(sink, address).mail_from, _from_sample(sample, address))
    full = "full@example.org"
    _deliver(receiver, _sent_to(sink, full).mail_from, _from_sample("sisimai-lhost-postfix-08.eml", full))
    # A feedback loop reports to our FBL address; the original it quotes carries our return path.
    angry = _sent_to(sink, "angry@example.org")
    report = _from_sample("sisimai-arf-16.eml", "angry@example.org").replace(
        b"Content-Type: message/rfc822\n\n",
        b"Content-Type: message/rfc822\n\nReturn-Path: <%s>\n" % (angry.mail_from.encode()),
    )
    _deliver(receiver, "fbl@" + BOUNCE_DOMAIN, report)
    # The recipient's mail client uses the List-Unsubscribe mailto.
    sent = email.message_from_bytes(
        _sent_to(sink, "leaving@example.org").content, policy=email.policy.default
    )
    mailto = re.search(r"<mailto:([^>?]+)>", sent["List-Unsubscribe"]).group(1)
    _deliver(receiver, mailto, b"From: leaving@example.org\r\nSubject: unsubscribe\r\n\r\n")
    # The same DSN delivered twice (an MTA that missed our 250) changes nothing more.
    _deliver(
        receiver,
        _sent_to(sink, "dead1@example.org").mail_from,
        _from_sample("sisimai-lhost-postfix-01.eml", "dead1@example.org"),
    )

    assert list(spool.pending(runtime.settings())) == []  # all processed
    expected = {
        "dead1@example.org": "hard_bounce",
        "dead2@example.org": "hard_bounce",
        "angry@example.org": "complaint",
        "leaving@example.org": "list_unsubscribe",
    }
    for address in PEOPLE:
        state = ("unsubscribed", expected[address]) if address in expected else ("subscribed", None)
        assert subscription_of(db, shop["id"], address) == state, address
    with db.session() as session:
        entries = {e.address: e.reason for e in suppression.page(session, shop["id"])}
        assert entries == expected
        events = session.scalars(
            select(AudienceEvent).where(AudienceEvent.type == "subscription.unsubscribed")
        ).all()
        assert sorted((e.data["email"], e.reason, e.mailing_id, e.data["optout_type"]) for e in events) == [
            ("angry@example.org", "complaint", first["id"], 16),
            ("dead1@example.org", "hard_bounce", first["id"], 8),
            ("dead2@example.org", "hard_bounce", first["id"], 8),
            ("leaving@example.org", "list_unsubscribe", first["id"], 2),
        ]
        ledger = {r.address: (r.state, r.reply_status) for r in session.scalars(select(LedgerEntry))}
        assert ledger["dead1@example.org"] == ("hard_bounce", "5.1.1")
        assert ledger["full@example.org"][0] == "sent"
    report = client.get(f"/api/v1/mailings/{first['id']}", headers=shop["headers"]).json()["counters"]
    assert (report["sent"], report["hard_bounced"], report["soft_bounced"], report["complaints"]) == (
        4,
        2,
        1,
        1,
    )

    run_webhook_dispatcher()  # also nudged after each commit; this waits for whatever is still due
    verify = Webhook(hook.json()["secret"])
    delivered = [verify.verify(r.body, r.headers) for r in crm.wait_for(4)]
    assert sorted((e["recipient"]["email"], e["reason"], e["mailing_id"]) for e in delivered) == [
        ("angry@example.org", "complaint", first["id"]),
        ("dead1@example.org", "hard_bounce", first["id"]),
        ("dead2@example.org", "hard_bounce", first["id"]),
        ("leaving@example.org", "list_unsubscribe", first["id"]),
    ]

    # The nightly unsubscriber export carries them back with MailUp's reason codes and the mailing.
    from missiva.sync.export.unsubscribers import UnsubscriberExport, export_unsubscribers

    out = io.BytesIO()
    with db.session() as session:
        export_unsubscribers(session, shop["id"], UnsubscriberExport(), out, record=False)
    rows = list(csv.DictReader(io.StringIO(out.getvalue().decode("utf-8-sig")), delimiter=";"))
    assert sorted((r["email"], r["reason"], r["optout_type"], r["optout_nl"]) for r in rows) == [
        ("angry@example.org", "complaint", "16", str(first["id"])),
        ("dead1@example.org", "hard_bounce", "8", str(first["id"])),
        ("dead2@example.org", "hard_bounce", "8", str(first["id"])),
        ("leaving@example.org", "list_unsubscribe", "2", str(first["id"])),
    ]

    sink.handler.reset()
    _mailing(client, shop)
    assert sorted(received_to(sink)) == ["full@example.org", "good@example.org"]
