"""Relay URLs and the meaning of SMTP replies."""

from __future__ import annotations

import pytest

from missiva.delivery.smtp import Relay, RelayConfigError, SendStatus, TlsMode, classify, retry_delay


def test_relay_url_gives_host_port_tls_and_credentials() -> None:
    relay = Relay("smtp://user%40example.com:p%3Ass@mail.example.com:587?starttls=1", weight=2)

    assert (relay.host, relay.port, relay.tls) == ("mail.example.com", 587, TlsMode.STARTTLS)
    assert (relay.username, relay.password) == ("user@example.com", "p:ss")
    assert "p:ss" not in repr(relay)


def test_smtps_defaults_to_port_465_with_implicit_tls() -> None:
    relay = Relay("smtps://u:p@mail.example.com")

    assert (relay.port, relay.tls) == (465, TlsMode.IMPLICIT)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://mail.example.com", "smtp:// or smtps://"),
        ("smtp://u:p@mail.example.com", "credentials would travel in clear"),
        ("smtp://mail.example.com?tls=1", "unknown relay URL option(s): tls"),
        ("smtp://mail.example.com:99999", "bad port"),
        ("smtp://", "no host"),
    ],
)
def test_unusable_relay_urls_are_refused_with_the_reason(url: str, message: str) -> None:
    with pytest.raises(RelayConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        Relay(url)


def test_bad_weight_and_connection_count_are_refused() -> None:
    with pytest.raises(RelayConfigError, match="weight"):
        Relay("smtp://127.0.0.1", weight=0)
    with pytest.raises(RelayConfigError, match="max_connections"):
        Relay("smtp://127.0.0.1", max_connections=0)


@pytest.mark.parametrize(
    ("code", "text", "status"),
    [
        (250, "2.0.0 Ok: queued", SendStatus.SENT),
        (550, "5.1.1 <x@example.org>: Recipient address rejected: User unknown", SendStatus.HARD_BOUNCE),
        (550, "5.1.10 Recipient address rejected: null MX", SendStatus.HARD_BOUNCE),
        (553, "5.1.3 Bad recipient address syntax", SendStatus.HARD_BOUNCE),
        (550, "Requested action not taken: mailbox unavailable, user unknown", SendStatus.HARD_BOUNCE),
        (550, "5.7.1 Message rejected as spam", SendStatus.FAILED),
        (552, "5.2.2 Mailbox full", SendStatus.FAILED),
        (421, "4.7.0 Try again later", SendStatus.SOFT_FAIL),
        (452, "4.2.2 Mailbox full", SendStatus.SOFT_FAIL),
    ],
)
def test_replies_map_to_ledger_statuses(code: int, text: str, status: SendStatus) -> None:
    assert classify(code, text).status is status


def test_a_refused_sender_is_never_a_hard_bounce_of_the_recipient() -> None:
    result = classify(550, "5.1.1 sender unknown", recipient_stage=False)

    assert (result.status, result.enhanced) == (SendStatus.FAILED, "5.1.1")


def test_retry_delays_grow_and_stay_under_the_cap() -> None:
    first = [retry_delay(1) for _ in range(50)]
    fifth = [retry_delay(5) for _ in range(50)]

    assert all(30 <= delay <= 60 for delay in first)
    assert all(480 <= delay <= 960 for delay in fifth)
    assert retry_delay(40) <= 6 * 3600
