"""Delivery through the SMTP pool against real servers: what arrives, and what the sender is told."""

from __future__ import annotations

import asyncio
import email
import email.policy
import ssl
from collections.abc import Iterator

import pytest

from missiva.delivery.smtp import Relay, SendJob, SendResult, SendStatus, SmtpPool
from missiva.messages.content import MessageContent
from missiva.messages.mime import MessageSkeleton, Recipient, SendingDomain
from missiva.messages.templating import FieldMap

from .conftest import PASSWORD, USER, Sink, SmtpServer, free_port

SKELETON = MessageSkeleton(
    MessageContent(
        subject="Offerta per [nome|te]",
        html="<p>Ciao [nome|Cliente],</p><p>il tuo indirizzo è [email].</p>",
        text="Ciao [nome|Cliente],\n.riga che inizia con un punto\n..e due\n.\nfine\n",
        from_address="news@example.com",
        from_name="Negozio",
    ),
    mailing_id=9,
    domain=SendingDomain("example.com", verp_secret=b"test"),
    fields=FieldMap({"nome": 1}),
)


def job(index: int, domain: str = "example.org") -> SendJob:
    message = SKELETON.render(
        Recipient(
            id=index,
            email=f"user{index}@{domain}",
            unsubscribe_url=f"https://example.com/u/{index}",
            unsubscribe_mailto=f"unsub+{index}@example.com",
            fields={1: f"Utente {index}"},
        )
    )
    return SendJob(message.envelope_from, message.recipient, message.data, ref=index)


def send_all(pool: SmtpPool, jobs: list[SendJob]) -> dict[int, SendResult]:
    async def run() -> dict[int, SendResult]:
        async with pool:
            return {item.ref: result async for item, result in pool.send_stream(jobs)}

    return asyncio.run(run())


def send_one(pool: SmtpPool, item: SendJob) -> SendResult:
    async def run() -> SendResult:
        async with pool:
            return await pool.send(item.envelope_from, item.recipient, item.data)

    return asyncio.run(run())


def test_pipelined_stream_delivers_every_message_intact_to_smtp_sink(smtp_sink: Sink) -> None:
    jobs = [job(i) for i in range(300)]

    results = send_all(SmtpPool([Relay(smtp_sink.url, max_connections=4)]), jobs)

    assert {result.status for result in results.values()} == {SendStatus.SENT}
    assert len(results) == 300
    expected = sorted(item.data.replace(b"\r\n", b"\n") for item in jobs)
    received = sorted(message.rstrip(b"\n") + b"\n" for message in smtp_sink.messages())
    assert received == expected


def test_messages_arrive_with_headers_and_dot_lines_unchanged(smtp_server: SmtpServer) -> None:
    item = job(1)

    result = send_one(SmtpPool([Relay(smtp_server.url())]), item)

    assert result.status is SendStatus.SENT
    (received,) = smtp_server.handler.received
    assert received.mail_from == item.envelope_from
    assert received.mail_from.startswith("bounces+m9.r1.") and received.mail_from.endswith("@example.com")
    assert received.rcpt_tos == ["user1@example.org"]
    assert received.content == item.data
    parsed = email.message_from_bytes(received.content, policy=email.policy.default)
    text = parsed.get_body(("plain",)).get_content().replace("\r\n", "\n")
    assert ".riga che inizia con un punto\n..e due\n.\nfine" in text


@pytest.mark.parametrize("pipelining", [True, False], ids=["pipelining", "one-command-per-round-trip"])
def test_each_recipient_gets_its_own_classification(smtp_server: SmtpServer, pipelining: bool) -> None:
    smtp_server.handler.pipelining = pipelining
    smtp_server.handler.rcpt_replies.update(
        {
            "user1@example.org": "550 5.1.1 User unknown",
            "user2@example.org": "451 4.3.0 Try again later",
            "user3@example.org": "554 5.7.1 Rejected by policy",
            "user4@example.org": "550 No such user here",
        }
    )
    jobs = [job(i) for i in range(6)]

    results = send_all(SmtpPool([Relay(smtp_server.url(), max_connections=1)]), jobs)

    assert results[0].status is SendStatus.SENT
    assert (results[1].status, results[1].code, results[1].enhanced) == (SendStatus.HARD_BOUNCE, 550, "5.1.1")
    assert (results[2].status, results[2].code, results[2].enhanced) == (SendStatus.SOFT_FAIL, 451, "4.3.0")
    assert (results[3].status, results[3].code, results[3].enhanced) == (SendStatus.FAILED, 554, "5.7.1")
    assert (results[4].status, results[4].enhanced) == (SendStatus.HARD_BOUNCE, None)
    assert results[5].status is SendStatus.SENT
    # Rejected recipients leave the session usable: one session carried everything.
    assert smtp_server.handler.sessions == 1
    assert [r.rcpt_tos for r in smtp_server.handler.received] == [
        ["user0@example.org"],
        ["user5@example.org"],
    ]


def test_starttls_and_auth_before_sending(starttls_server: SmtpServer, client_tls: ssl.SSLContext) -> None:
    url = starttls_server.url(credentials=f"{USER}:s3cret%20pass@", query="?starttls=1")

    result = send_one(SmtpPool([Relay(url)], ssl_context=client_tls), job(1))

    assert result.status is SendStatus.SENT
    (received,) = starttls_server.handler.received
    assert received.tls and received.authenticated


# aiosmtpd warns per session because it only counts STARTTLS as encryption; this session is all TLS.
@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_implicit_tls_with_auth(smtps_server: SmtpServer, client_tls: ssl.SSLContext) -> None:
    url = smtps_server.url("smtps", credentials=f"{USER}:{PASSWORD.replace(' ', '%20')}@")

    result = send_one(SmtpPool([Relay(url)], ssl_context=client_tls), job(1))

    assert result.status is SendStatus.SENT
    (received,) = smtps_server.handler.received
    assert received.tls and received.authenticated


def test_wrong_password_leaves_the_message_for_a_later_retry(
    starttls_server: SmtpServer, client_tls: ssl.SSLContext
) -> None:
    url = starttls_server.url(credentials=f"{USER}:wrong@", query="?starttls=1")

    result = send_one(SmtpPool([Relay(url)], ssl_context=client_tls), job(1))

    assert result.status is SendStatus.SOFT_FAIL
    assert "AUTH" in result.text and "535" in result.text
    assert starttls_server.handler.received == []


def test_certificate_not_trusted_is_refused(starttls_server: SmtpServer) -> None:
    url = starttls_server.url(credentials=f"{USER}:x@", query="?starttls=1")

    result = send_one(SmtpPool([Relay(url)], ssl_context=ssl.create_default_context()), job(1))

    assert result.status is SendStatus.SOFT_FAIL
    assert "CERTIFICATE_VERIFY_FAILED" in result.text
    assert starttls_server.handler.received == []


def test_new_session_when_the_server_hangs_up_between_messages(smtp_server: SmtpServer) -> None:
    smtp_server.handler.close_after_data = True

    async def run() -> list[SendResult]:
        async with SmtpPool([Relay(smtp_server.url(), max_connections=1)]) as pool:
            results = []
            for i in range(4):
                item = job(i)
                results.append(await pool.send(item.envelope_from, item.recipient, item.data))
                await asyncio.sleep(0.05)  # let the server's close arrive while the session is idle
            return results

    results = asyncio.run(run())

    assert [result.status for result in results] == [SendStatus.SENT] * 4
    assert smtp_server.handler.sessions == 4
    assert len(smtp_server.handler.received) == 4


def test_stream_moves_to_a_new_session_when_the_server_ends_one_without_duplicates(
    smtp_server: SmtpServer,
) -> None:
    smtp_server.handler.max_per_session = 3

    results = send_all(SmtpPool([Relay(smtp_server.url(), max_connections=1)]), [job(i) for i in range(10)])

    assert {result.status for result in results.values()} == {SendStatus.SENT}
    received = sorted(r.rcpt_tos[0] for r in smtp_server.handler.received)
    assert received == sorted(f"user{i}@example.org" for i in range(10))
    assert smtp_server.handler.sessions == 4


def test_failover_to_the_second_relay_when_the_first_refuses_connections(smtp_server: SmtpServer) -> None:
    dead = Relay(f"smtp://127.0.0.1:{free_port()}", weight=100)
    alive = Relay(smtp_server.url(), weight=1)

    results = send_all(SmtpPool([dead, alive]), [job(i) for i in range(20)])

    assert {result.status for result in results.values()} == {SendStatus.SENT}
    assert len(smtp_server.handler.received) == 20


def test_no_relay_reachable_is_a_soft_failure() -> None:
    result = send_one(SmtpPool([Relay(f"smtp://127.0.0.1:{free_port()}")]), job(1))

    assert result.status is SendStatus.SOFT_FAIL
    assert result.code == 0
    assert "no relay accepts connections" in result.text


def test_uncertain_when_smtp_sink_hangs_up_after_the_data(dying_sink: Sink) -> None:
    result = send_one(SmtpPool([Relay(dying_sink.url)]), job(1))

    assert result.status is SendStatus.UNCERTAIN
    assert not result.retryable


def test_uncertain_when_the_server_dies_during_data(smtp_server: SmtpServer) -> None:
    smtp_server.handler.abort_on_data = True

    results = send_all(SmtpPool([Relay(smtp_server.url(), max_connections=2)]), [job(i) for i in range(3)])

    assert {result.status for result in results.values()} == {SendStatus.UNCERTAIN}


def test_uncertain_when_the_final_reply_never_comes(smtp_server: SmtpServer) -> None:
    smtp_server.handler.stall_on_data = 1.0

    result = send_one(SmtpPool([Relay(smtp_server.url())], data_timeout=0.3), job(1))

    assert result.status is SendStatus.UNCERTAIN
    assert "no reply" in result.text


def test_address_with_line_breaks_cannot_inject_commands(smtp_server: SmtpServer) -> None:
    item = job(1)

    result = send_one(
        SmtpPool([Relay(smtp_server.url())]),
        SendJob(item.envelope_from, "a@b.c>\r\nRCPT TO:<x@y.z", item.data),
    )

    assert result.status is SendStatus.FAILED
    assert smtp_server.handler.received == []


def test_bare_line_feeds_are_sent_as_crlf(smtp_server: SmtpServer) -> None:
    data = b"Subject: lf\n\nline one\n.dot line\nline three\n"

    result = send_one(SmtpPool([Relay(smtp_server.url())]), SendJob("a@example.com", "b@example.org", data))

    assert result.status is SendStatus.SENT
    assert smtp_server.handler.received[0].content == data.replace(b"\n", b"\r\n")


def test_stream_never_holds_more_than_its_window(smtp_server: SmtpServer) -> None:
    pulled = 0
    high_water = 0

    def jobs() -> Iterator[SendJob]:
        nonlocal pulled
        for i in range(60):
            pulled += 1
            yield job(i)

    async def run() -> int:
        nonlocal high_water
        count = 0
        async with SmtpPool([Relay(smtp_server.url(), max_connections=3)], window=5) as pool:
            async for _ in pool.send_stream(jobs()):
                count += 1
                high_water = max(high_water, pulled - count)
        return count

    assert asyncio.run(run()) == 60
    assert 1 <= high_water <= 5


def test_stream_finishes_taken_jobs_then_raises_the_producers_error(smtp_server: SmtpServer) -> None:
    def jobs() -> Iterator[SendJob]:
        yield job(1)
        yield job(2)
        raise RuntimeError("template broke at recipient 3")

    async def run() -> list[SendStatus]:
        statuses = []
        async with SmtpPool([Relay(smtp_server.url())]) as pool:
            with pytest.raises(RuntimeError, match="recipient 3"):
                async for _, result in pool.send_stream(jobs()):
                    statuses.append(result.status)
        return statuses

    assert asyncio.run(run()) == [SendStatus.SENT, SendStatus.SENT]
