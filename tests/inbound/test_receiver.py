"""The inbound SMTP receiver: only our addresses get in, every accepted message is spooled first."""

from __future__ import annotations

import json
import re
import smtplib
import subprocess
import sys
from pathlib import Path

import pytest

from missiva import runtime
from missiva.config import Settings
from missiva.delivery.configuration import SendingConfig
from missiva.delivery.sender import sending_domain
from missiva.inbound import spool, verp
from missiva.inbound.receiver import Receiver
from missiva.keys import derived_secret
from missiva.messages.content import MessageContent
from missiva.messages.mime import Recipient, compile_message

SECRET = "receiver-test-secret"
DATA = Path(__file__).parent.parent / "data" / "bounces"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings.from_env(
        {
            "MISSIVA_DATA_DIR": str(tmp_path),
            "MISSIVA_SECRET_KEY": SECRET,
            "MISSIVA_BOUNCE_DOMAIN": "bounce.test",
            "MISSIVA_INBOUND_MAX_BYTES": "2000000",
        }
    )


@pytest.fixture
def receiver(settings: Settings):
    notified: list[str] = []
    rx = Receiver(settings, notified.append, port=0)
    host, port = rx.start()
    rx.notified = notified
    rx.address = (host, port)
    yield rx
    rx.stop()


def send(receiver, rcpts: list[str], body: bytes) -> dict:
    with smtplib.SMTP(*receiver.address, timeout=10) as client:
        return client.sendmail("MAILER-DAEMON@mx.example.net", rcpts, body)


def test_verp_complaint_and_unsubscribe_addresses_are_spooled(receiver, settings):
    bounce_addr = verp.encode(
        12, 34, local="bounces", domain="bounce.test", secret=derived_secret("verp", SECRET)
    )
    raw = (DATA / next(p.name for p in sorted(DATA.glob("*.eml")))).read_bytes()
    send(receiver, [bounce_addr], raw)
    send(receiver, ["FBL@bounce.test"], b"Subject: report\r\n\r\nspam\r\n")
    send(receiver, ["unsubscribe+abc.def@bounce.test"], b"Subject: unsubscribe\r\n\r\n")
    spooled = list(spool.pending(settings))
    assert [s.envelope_recipients for s in spooled] == [
        (bounce_addr,),
        ("FBL@bounce.test",),
        ("unsubscribe+abc.def@bounce.test",),
    ]

    def lines(data: bytes) -> list[bytes]:
        return re.split(rb"\r?\n", data.rstrip())

    assert lines(spooled[0].raw) == lines(raw)  # the content as the MTA sent it, line by line
    assert len(receiver.notified) == 3
    spool.done(settings, spooled[0].key)
    assert len(list(spool.pending(settings))) == 2


def test_the_return_path_the_sender_puts_on_a_message_is_accepted(receiver, settings):
    runtime.configure(settings)  # the sender derives its VERP key from the process settings
    domain = sending_domain(SendingConfig(sending_domain="news.test", bounce_domain="bounce.test"))
    skeleton = compile_message(
        MessageContent(subject="Hi", html=None, text="Hello", from_address="news@news.test"),
        mailing_id=41,
        domain=domain,
    )
    rendered = skeleton.render(
        Recipient(
            id=977,
            email="anna@example.org",
            unsubscribe_url="https://missiva.test/u/x",
            unsubscribe_mailto="unsubscribe+x@bounce.test",
        )
    )
    assert rendered.envelope_from.startswith("bounces+m41.r977.")

    send(receiver, [rendered.envelope_from], b"Subject: Undelivered Mail\r\n\r\nbounce\r\n")

    assert [s.envelope_recipients for s in spool.pending(settings)] == [(rendered.envelope_from,)]


@pytest.mark.parametrize(
    "rcpt",
    [
        "someone@bounce.test",
        "bounces+m12.r34.aaaaaaaaaa@bounce.test",  # forged VERP tag
        "postmaster@other.example",
        "fbl@bounce.test.evil.example",
    ],
)
def test_everything_else_is_refused_at_rcpt(receiver, settings, rcpt):
    with pytest.raises(smtplib.SMTPRecipientsRefused) as info:
        send(receiver, [rcpt], b"Subject: x\r\n\r\nx\r\n")
    assert info.value.recipients[rcpt][0] == 550
    assert list(spool.pending(settings)) == []


def test_oversized_message_is_refused_and_the_receiver_keeps_working(receiver, settings):
    big = b"Subject: big\r\n\r\n" + (b"x" * 998 + b"\r\n") * 3000  # ~3 MB > 2 MB limit
    with pytest.raises(smtplib.SMTPException):
        send(receiver, ["fbl@bounce.test"], big)
    send(receiver, ["fbl@bounce.test"], b"Subject: small\r\n\r\nok\r\n")
    assert [s.raw.split(b"\r\n")[0] for s in spool.pending(settings)] == [b"Subject: small"]


def test_hostile_messages_are_accepted_and_classified_without_crashing(receiver, settings):
    nested = b"Content-Type: multipart/mixed; boundary=b0\r\n\r\n" + b"".join(
        f"--b{i}\r\nContent-Type: multipart/mixed; boundary=b{i + 1}\r\n\r\n".encode() for i in range(500)
    )
    broken = b"Content-Type: text/plain; charset=x-no-such-charset\r\n\r\n\xff\xfe\x00junk\r\n"
    for body in (nested, broken):
        send(receiver, ["abuse@bounce.test"], body)
    from missiva.inbound.classify import classify

    kinds = [classify(s.raw).kind for s in spool.pending(settings)]
    assert kinds == ["unknown", "unknown"]


def test_classify_cli_prints_one_json_object_per_file(tmp_path):
    files = sorted(DATA.glob("*.eml"))[:3]
    expected = json.loads((DATA / "expected.json").read_text())
    out = subprocess.run(
        [sys.executable, "-m", "missiva", "inbound", "classify", *map(str, files)],
        capture_output=True,
        text=True,
        check=True,
        env={"MISSIVA_DATA_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"},
    ).stdout
    rows = [json.loads(line) for line in out.splitlines()]
    assert [r["file"] for r in rows] == [str(f) for f in files]
    for row, f in zip(rows, files, strict=True):
        assert {"kind", "status", "recipient"} <= row.keys()
        assert row["kind"] == expected[f.name]["kind"]
