"""The IMAP poller against a real Dovecot: unseen messages are spooled, then marked seen or moved."""

from __future__ import annotations

import dataclasses
import imaplib
from collections.abc import Iterator
from pathlib import Path

import pytest

from missiva.config import Settings
from missiva.inbound import processor, spool
from missiva.inbound.imap_poller import ImapConfig, ImapConfigError, ImapError, poll

from .conftest import BOUNCE_DOMAIN, seed_account, seed_sent, subscription_of
from .dovecot import PASSWORD, USER, Dovecot

DATA = Path(__file__).parent.parent / "data" / "bounces"


@pytest.fixture(scope="module")
def dovecot() -> Iterator[Dovecot]:
    server = Dovecot().start()
    yield server
    server.stop()


@pytest.fixture
def plain_settings(tmp_path: Path) -> Settings:
    """Settings for the tests that only spool (no database)."""
    return Settings.from_env(
        {"MISSIVA_DATA_DIR": str(tmp_path), "MISSIVA_SECRET_KEY": "k", "MISSIVA_BOUNCE_DOMAIN": BOUNCE_DOMAIN}
    )


@pytest.fixture
def mailbox(dovecot: Dovecot) -> Iterator[imaplib.IMAP4]:
    """A session of the test itself on the same mailbox, emptied before the test."""
    client = imaplib.IMAP4("127.0.0.1", dovecot.port, timeout=10)
    client.login(USER, PASSWORD)
    for folder in ("INBOX", "Processed"):
        status, data = client.select(folder)
        if status == "OK" and int(data[0]) > 0:
            client.store("1:*", "+FLAGS", "(\\Deleted)")
            client.expunge()
    client.select("INBOX")
    yield client
    client.logout()


def _url(dovecot: Dovecot, *, tls: bool, query: str = "") -> str:
    scheme, port = ("imaps", dovecot.tls_port) if tls else ("imap", dovecot.port)
    return f"{scheme}://{USER}:{PASSWORD.replace(' ', '%20')}@localhost:{port}/INBOX{query}"


def _flags(client: imaplib.IMAP4, folder: str) -> list[bytes]:
    if int(client.select(folder)[1][0]) == 0:
        return []
    return [d for d in client.fetch("1:*", "(FLAGS)")[1] if isinstance(d, bytes)]


def test_unseen_bounces_are_spooled_moved_and_then_act(db, inbound_settings, dovecot, mailbox) -> None:
    account_id, list_id = seed_account(db)
    sent = seed_sent(db, account_id, list_id, ["dead@example.org", "reader@example.org"])
    dsn = (DATA / "sisimai-lhost-postfix-01.eml").read_bytes()
    bounce = b"Delivered-To: " + sent.verp("dead@example.org", inbound_settings).encode() + b"\r\n" + dsn
    mailbox.append("INBOX", None, None, bounce)
    mailbox.append("INBOX", "(\\Seen)", None, b"Subject: read already\r\n\r\nold\r\n")
    config = ImapConfig.from_url(
        _url(dovecot, tls=False, query="?starttls=1&processed=Processed"),
        ssl_context=dovecot.client_context(),
    )
    assert config.security == "starttls" and config.password == PASSWORD
    keys: list[str] = []

    assert poll(inbound_settings, config, on_message=keys.append) == 1
    assert poll(inbound_settings, config, on_message=keys.append) == 0  # nothing unseen any more

    lf = [s.raw.replace(b"\r\n", b"\n") for s in spool.pending(inbound_settings)]
    assert lf == [bounce.replace(b"\r\n", b"\n")]  # the message itself (IMAP hands out CRLF lines)
    assert [s.source for s in spool.pending(inbound_settings)] == ["imap"] and len(keys) == 1
    assert len(_flags(mailbox, "INBOX")) == 1  # the bounce moved out; the seen message stayed
    moved = _flags(mailbox, "Processed")
    assert len(moved) == 1 and b"\\Seen" in moved[0]

    summary = processor.process_pending(inbound_settings, db)
    assert dict(summary.actions) == {"suppressed": 1}
    assert subscription_of(db, account_id, "dead@example.org") == ("unsubscribed", "hard_bounce")
    assert subscription_of(db, account_id, "reader@example.org") == ("subscribed", None)


def test_imaps_marks_seen_in_place_and_skips_oversized_messages(plain_settings, dovecot, mailbox) -> None:
    settings = dataclasses.replace(plain_settings, inbound_max_bytes=10_000)
    small = b"Subject: small\r\nTo: fbl@" + BOUNCE_DOMAIN.encode() + b"\r\n\r\nx\r\n"
    mailbox.append("INBOX", None, None, small)
    mailbox.append("INBOX", None, None, b"Subject: huge\r\n\r\n" + b"y" * 20_000 + b"\r\n")
    config = ImapConfig.from_url(_url(dovecot, tls=True), ssl_context=dovecot.client_context())

    assert poll(settings, config) == 1

    assert [s.raw.split(b"\r\n")[0] for s in spool.pending(settings)] == [b"Subject: small"]
    flags = _flags(mailbox, "INBOX")
    assert len(flags) == 2 and all(b"\\Seen" in f for f in flags)


def test_wrong_password_and_bad_urls_are_clear_errors(plain_settings, dovecot) -> None:
    bad = ImapConfig.from_url(f"imap://{USER}:nope@127.0.0.1:{dovecot.port}/INBOX")
    with pytest.raises(ImapError, match="LOGIN failed"):
        poll(plain_settings, bad)
    with pytest.raises(ImapError, match="SELECT"):
        poll(plain_settings, ImapConfig.from_url(_url(dovecot, tls=False).replace("INBOX", "Nope")))
    for url, message in [
        ("pop3://u:p@h/", "imap:// or imaps://"),
        ("imaps://h/INBOX", "user name"),
        ("imaps://u:p@h/?starttls=1", "starttls=1 goes with imap://"),
        ("imap://u:p@h/?delete=1", "unknown IMAP URL option"),
    ]:
        with pytest.raises(ImapConfigError, match=message):
            ImapConfig.from_url(url)
