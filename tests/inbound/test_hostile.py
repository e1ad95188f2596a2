"""Hostile and broken mail through the receiver and the processor: refused, or recorded as unknown,
and the receiver keeps serving."""

from __future__ import annotations

import base64
import smtplib
from collections.abc import Iterator

import pytest
from sqlalchemy import select

from missiva.config import Settings
from missiva.inbound import spool
from missiva.inbound.models import InboundMessage
from missiva.inbound.receiver import Receiver
from missiva.jobs import enqueue_inbound

from .conftest import BOUNCE_DOMAIN, seed_account, seed_sent, subscription_of

FBL = "fbl@" + BOUNCE_DOMAIN


@pytest.fixture
def receiver(inbound_settings: Settings) -> Iterator[tuple[str, int]]:
    assert inbound_settings.inbound_max_bytes == 25 * 1024 * 1024  # the shipped default
    rx = Receiver(inbound_settings, enqueue_inbound, port=0)
    yield rx.start()
    rx.stop()


def _send(address: tuple[str, int], rcpt: str, raw: bytes) -> None:
    with smtplib.SMTP(*address, timeout=30) as client:
        client.sendmail("", [rcpt], raw)


def _nested(depth: int) -> bytes:
    head = b"Content-Type: multipart/mixed; boundary=b0\r\n\r\n"
    return head + b"".join(
        b"--b%d\r\nContent-Type: multipart/mixed; boundary=b%d\r\n\r\n" % (i, i + 1) for i in range(depth)
    )


REPORT = b"Content-Type: multipart/report; report-type=delivery-status; boundary=r\r\n\r\n--r\r\n"
HOSTILE = {
    "nested MIME, 5000 levels": _nested(5000),
    "nested message/rfc822 DSN": REPORT + b"Content-Type: message/rfc822\r\n\r\n" * 2000,
    "unknown charset and binary junk": b"Content-Type: text/plain; charset=x-no-such\r\n\r\n\xff\x00junk\r\n",
    "broken base64 and RFC 2047": b"Subject: =?utf-8?B?%%%not-base64?=\r\n"
    b"Content-Transfer-Encoding: base64\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n!!!!"
    + base64.b64encode(b"\xc3\x28")
    + b"====\r\n",
    "garbage delivery-status fields": REPORT + b"Content-Type: message/delivery-status\r\n"
    b"Content-Transfer-Encoding: base64\r\n\r\n"
    b"\x00\x01Final-Recipient: ;;;\r\nStatus: 9.9.9.9.9\r\nAction: explode\r\n--r--\r\n",
    "8-bit headers and NULs": b"From: \xe9\xe8\x00@\r\nTo: \x00\r\nSubject: \xff\xff\r\n\r\n\x00\x00\x00\r\n",
    "no header at all": b"\r\n\r\n",
}


def test_hostile_messages_are_recorded_as_unknown_and_change_nothing(db, inbound_settings, receiver) -> None:
    account_id, list_id = seed_account(db)
    seed_sent(db, account_id, list_id, ["anna@example.org"])

    for raw in HOSTILE.values():
        _send(receiver, FBL, raw)

    assert list(spool.pending(inbound_settings)) == []
    assert not (spool.spool_path(inbound_settings) / "failed").exists()  # none broke processing
    with db.session() as session:
        logged = session.execute(select(InboundMessage.kind, InboundMessage.action)).all()
    assert sorted(logged) == [("unknown", "recorded")] * len(HOSTILE)
    assert subscription_of(db, account_id, "anna@example.org") == ("subscribed", None)


def test_a_50_mb_message_is_refused_at_data_and_the_receiver_keeps_working(
    db, inbound_settings, receiver
) -> None:
    account_id, list_id = seed_account(db)
    sent = seed_sent(db, account_id, list_id, ["dead@example.org"])
    huge = b"Subject: huge\r\n\r\n" + (b"x" * 998 + b"\r\n") * 50_000  # 50 MB

    with pytest.raises(smtplib.SMTPSenderRefused) as announced:  # a client that announces SIZE=
        _send(receiver, FBL, huge)
    with smtplib.SMTP(*receiver, timeout=30) as client:  # one that does not: refused after DATA
        client.ehlo()
        assert client.mail("")[0] == 250 and client.rcpt(FBL)[0] == 250
        code, _ = client.data(huge)
    assert (announced.value.smtp_code, code) == (552, 552)
    assert list(spool.pending(inbound_settings)) == []
    dsn = (
        b"Content-Type: multipart/report; report-type=delivery-status; boundary=r\r\n\r\n--r\r\n"
        b"Content-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example.net\r\n\r\n"
        b"Final-Recipient: rfc822; dead@example.org\r\nAction: failed\r\nStatus: 5.1.1\r\n--r--\r\n"
    )
    _send(receiver, sent.verp("dead@example.org", inbound_settings), dsn)

    assert subscription_of(db, account_id, "dead@example.org") == ("unsubscribed", "hard_bounce")
    with db.session() as session:
        assert session.scalars(select(InboundMessage.kind)).all() == ["hard"]
