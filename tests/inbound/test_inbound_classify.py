"""Targeted behaviour of classify(): the verdicts a postmaster relies on, and hostile input."""

import time

import pytest

from missiva.inbound import verp
from missiva.inbound.classify import Classification, Kind, classify

SECRET = b"test-verp-secret"


def dsn(
    *,
    status: str,
    diagnostic: str,
    action: str = "failed",
    recipient: str = "kijitora@example.org",
    original_headers: str = "",
    to: str = "bounces@bounce.example.com",
) -> bytes:
    """A Postfix-style RFC 3464 report about one recipient."""
    return f"""From: MAILER-DAEMON@mx.example.net (Mail Delivery System)
To: {to}
Subject: Undelivered Mail Returned to Sender
Auto-Submitted: auto-replied
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="BOUNDARY"

--BOUNDARY
Content-Type: text/plain; charset=us-ascii

This is the mail system at host mx.example.net.
<{recipient}>: host mx.example.org said: {diagnostic}

--BOUNDARY
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.example.net

Final-Recipient: rfc822; {recipient}
Original-Recipient: rfc822;{recipient}
Action: {action}
Status: {status}
Diagnostic-Code: smtp; {diagnostic}

--BOUNDARY
Content-Type: text/rfc822-headers

From: news@shop.example.com
To: {recipient}
Subject: Spring sale
{original_headers}
--BOUNDARY--
""".replace("\n", "\r\n").encode()


def test_user_unknown_is_a_hard_bounce_with_status_and_recipient():
    result = classify(dsn(status="5.1.1", diagnostic="550 5.1.1 <Kijitora@Example.org>: User unknown"))

    assert result.kind is Kind.HARD
    assert (result.status, result.recipient) == ("5.1.1", "kijitora@example.org")
    assert "User unknown" in result.diagnostic


@pytest.mark.parametrize(
    "diagnostic",
    [
        "550 5.7.1 Service unavailable; client host blocked using zen.spamhaus.org",
        "550 5.7.1 Message rejected due to local policy",
        "554 5.7.1 Recipient address rejected: Access denied",
        "550-5.7.26 Unauthenticated email is not accepted due to domain's DMARC policy",
    ],
)
def test_policy_and_blocklist_rejections_are_soft_not_hard(diagnostic):
    result = classify(dsn(status="5.7.1", diagnostic=diagnostic))

    assert result.kind is Kind.SOFT
    assert result.status.startswith("5.7.")


def test_full_mailbox_is_soft_even_with_a_5xx():
    result = classify(dsn(status="5.2.2", diagnostic="552 5.2.2 Mailbox full"))

    assert (result.kind, result.status) == (Kind.SOFT, "5.2.2")


def test_generic_status_is_refined_from_the_text():
    full = classify(dsn(status="5.0.0", diagnostic="552 Quota exceeded for this user"))
    unknown = classify(dsn(status="5.0.0", diagnostic="550 No such user here"))

    assert (full.kind, full.status) == (Kind.SOFT, "5.2.2")
    assert (unknown.kind, unknown.status) == (Kind.HARD, "5.1.1")


def test_delayed_report_is_soft_whatever_the_text():
    result = classify(
        dsn(status="4.4.1", action="delayed", diagnostic="connect to mx.example.org: Connection timed out")
    )

    assert (result.kind, result.status) == (Kind.SOFT, "4.4.1")


def test_4xx_user_unknown_is_still_soft():
    result = classify(dsn(status="4.1.1", diagnostic="450 4.1.1 <kijitora@example.org>: User unknown"))

    assert result.kind is Kind.SOFT


def test_null_mx_domain_is_hard():
    result = classify(
        dsn(
            status="5.1.10",
            diagnostic="556 5.1.10 Recipient address has null MX; domain does not accept mail",
        )
    )

    assert (result.kind, result.status) == (Kind.HARD, "5.1.10")


def test_remote_code_wins_over_the_reporting_mta_summary():
    # sendmail summarises a remote blocklist rejection as Status 5.1.1
    result = classify(dsn(status="5.1.1", diagnostic="550 5.7.1 IP address blacklisted by recipient"))

    assert (result.kind, result.status) == (Kind.SOFT, "5.7.1")


def test_mailing_and_recipient_come_from_the_verp_address_the_bounce_was_sent_to():
    address = verp.encode(42, 4242, local="bounces", domain="bounce.example.com", secret=SECRET)

    in_to = classify(dsn(status="5.1.1", diagnostic="550 5.1.1 unknown", to=address), verp_secret=SECRET)
    in_envelope = classify(
        dsn(status="5.1.1", diagnostic="550 5.1.1 unknown"), verp_secret=SECRET, envelope_recipients=[address]
    )

    assert (in_to.mailing_id, in_to.recipient_id, in_to.verified) == (42, 4242, True)
    assert (in_envelope.mailing_id, in_envelope.recipient_id, in_envelope.verified) == (42, 4242, True)


def test_forged_verp_address_attributes_nothing():
    address = verp.encode(42, 4242, local="bounces", domain="bounce.example.com", secret=SECRET)
    forged = address.replace("r4242", "r4243")

    result = classify(dsn(status="5.1.1", diagnostic="550 5.1.1 unknown", to=forged), verp_secret=SECRET)

    assert (result.mailing_id, result.recipient_id) == (None, None)
    assert result.kind is Kind.HARD  # the bounce itself is still understood


def test_ids_fall_back_to_the_missiva_headers_of_the_embedded_original():
    headers = "X-Missiva-Mailing: 77\nX-Missiva-Recipient: 7007\n"

    result = classify(dsn(status="5.1.1", diagnostic="550 5.1.1 unknown", original_headers=headers))

    assert (result.mailing_id, result.recipient_id) == (77, 7007)
    assert not result.verified  # anyone can write these headers: a hint, not proof


def test_arf_complaint_names_the_original_recipient():
    raw = b"""From: feedback@fbl.example.net
To: fbl@example.com
Subject: Abuse report
MIME-Version: 1.0
Content-Type: multipart/report; report-type=feedback-report; boundary="B"

--B
Content-Type: text/plain

This is an abuse report.
--B
Content-Type: message/feedback-report

Feedback-Type: abuse
User-Agent: ExampleFBL/1.0
Version: 1
Original-Rcpt-To: <Reader@Example.net>

--B
Content-Type: message/rfc822

From: news@shop.example.com
To: reader@example.net
X-Missiva-Mailing: 5
X-Missiva-Recipient: 55
Subject: Spring sale

Buy now.
--B--
"""
    result = classify(raw)

    assert (result.kind, result.recipient, result.status) == (Kind.COMPLAINT, "reader@example.net", None)
    assert (result.mailing_id, result.recipient_id) == (5, 55)


@pytest.mark.parametrize(
    ("headers", "subject"),
    [
        ("Auto-Submitted: auto-replied\n", "Re: Spring sale"),
        ("X-Autoreply: yes\n", "Re: Spring sale"),
        ("Precedence: auto_reply\n", "Re: Spring sale"),
        ("", "Out of Office: Spring sale"),
        ("", "Automatic reply: Spring sale"),
        ("", "Risposta automatica: Spring sale"),
        ("", "Abwesenheitsnotiz: Spring sale"),
        ("", "Automatische Antwort: Spring sale"),
        ("", "Réponse automatique : Spring sale"),
        ("", "Respuesta automática: Spring sale"),
        ("", "Fuera de la oficina"),
    ],
)
def test_auto_replies_are_recognised_by_header_or_subject(headers, subject):
    raw = f"From: Reader <Reader@example.net>\nTo: news@example.com\nSubject: {subject}\n{headers}\nAway\n"

    result = classify(raw.encode())

    assert (result.kind, result.recipient) == (Kind.AUTOREPLY, "reader@example.net")


def test_auto_submitted_no_is_a_normal_mail():
    raw = b"From: reader@example.net\nTo: news@shop.example.com\nSubject: hi\nAuto-Submitted: no\n\nHello\n"

    assert classify(raw).kind is Kind.UNKNOWN


@pytest.mark.parametrize(
    ("subject", "body"),
    [("unsubscribe", ""), ("UNSUBSCRIBE", "please"), ("Re: Unsubscribe", ""), ("list", "Unsubscribe me\n")],
)
def test_mails_to_the_unsubscribe_address_are_unsubscribe_requests(subject, body):
    address = verp.encode(9, 99, local="unsubscribe", domain="shop.example.com", secret=SECRET)
    raw = f"From: reader@example.net\nTo: {address}\nSubject: {subject}\n\n{body}\n".encode()

    result = classify(raw, verp_secret=SECRET)

    assert (result.kind, result.recipient) == (Kind.UNSUBSCRIBE, "reader@example.net")
    assert (result.mailing_id, result.recipient_id) == (9, 99)


def test_plain_text_bounce_without_enhanced_code_maps_the_basic_reply():
    raw = b"""From: MAILER-DAEMON@mx.example.net
To: bounces@bounce.example.com
Subject: failure notice

Hi. This is the qmail-send program at mx.example.net.
I'm afraid I wasn't able to deliver your message to the following addresses.

<reader@example.org>:
192.0.2.1 does not like recipient.
Remote host said: 550 User unknown
Giving up on 192.0.2.1.

--- Below this line is a copy of the message.

To: reader@example.org
"""
    result = classify(raw)

    assert (result.kind, result.status, result.recipient) == (Kind.HARD, "5.1.1", "reader@example.org")


def test_to_dict_is_json_ready():
    result = classify(dsn(status="5.1.1", diagnostic="550 5.1.1 unknown"))

    assert result.to_dict() == {
        "kind": "hard",
        "status": "5.1.1",
        "recipient": "kijitora@example.org",
        "mailing_id": None,
        "recipient_id": None,
        "diagnostic": "550 5.1.1 unknown",
        "verified": False,
    }
    with pytest.raises(AttributeError):
        result.kind = Kind.SOFT  # frozen


def test_non_bytes_input_is_a_clear_type_error():
    with pytest.raises(TypeError, match="bytes"):
        classify("From: a@b\n\nhi")  # type: ignore[arg-type]


# Hostile input: every case must come back as a Classification, and quickly. No timing assertion is
# made (machines are noisy); the per-test timeout of pytest-timeout catches a hang.


def _nested(depth: int) -> bytes:
    head = b"".join(
        b'Content-Type: multipart/mixed; boundary="b%d"\n\n--b%d\n' % (i, i) for i in range(depth)
    )
    tail = b"".join(b"\n--b%d--\n" % i for i in reversed(range(depth)))
    return (
        b"From: MAILER-DAEMON@x.example\nSubject: failure notice\nMIME-Version: 1.0\n"
        + head
        + b"\n550 5.1.1 x\n"
        + tail
    )


@pytest.mark.timeout(20)
@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(_nested(1000), id="nesting-1000"),
        pytest.param(b"Subject: x\nContent-Type: message/rfc822\n\n" * 1000, id="rfc822-chain"),
        pytest.param(
            b"From: MAILER-DAEMON@x\nSubject: failure notice\nContent-Type: text/plain;"
            b" charset=x-no-such-charset\n\n"
            b"\xff\xfe 550 5.1.1 <a@b.example> unknown\n",
            id="unknown-charset",
        ),
        pytest.param(
            b"Subject: x\nContent-Type: text/plain; charset=utf-16\nContent-Transfer-Encoding:"
            b" base64\n\n!!!notbase64\xff\n",
            id="broken-base64-utf16",
        ),
        pytest.param(
            b'Content-Type: multipart/report; report-type=delivery-status; boundary="never-closed"\n\n'
            b"--never-closed\nContent-Type: message/delivery-status\n\nFinal-Recipient: rfc822;"
            b" a@b.example\nStatus: 5.1",
            id="truncated-boundary",
        ),
        pytest.param(bytes(range(256)) * 4096, id="binary-junk"),
        pytest.param(b"", id="empty"),
        pytest.param(b"\n\n\n", id="blank-lines"),
        pytest.param(b'Content-Type: multipart/mixed; boundary=""\n\n--\n--\n', id="empty-boundary"),
        pytest.param(b"Subject: " + b"=?utf-8?q?" * 20000 + b"\n\nx", id="encoded-word-storm"),
    ],
)
def test_hostile_input_is_classified_without_exception(raw):
    result = classify(raw)

    assert isinstance(result, Classification)
    assert result.kind in set(Kind)


@pytest.mark.timeout(30)
def test_50_megabyte_message_is_truncated_not_parsed_whole():
    head = dsn(status="5.1.1", diagnostic="550 5.1.1 <big@example.org> unknown", recipient="big@example.org")
    raw = (
        head[: head.rindex(b"--BOUNDARY--")]
        + b"--BOUNDARY\r\nContent-Type: text/plain\r\n\r\n"
        + b"A" * 50_000_000
    )

    started = time.perf_counter()
    result = classify(raw)
    elapsed = time.perf_counter() - started

    assert (result.kind, result.recipient) == (Kind.HARD, "big@example.org")
    print(f"50 MB message classified in {elapsed:.3f} s")
