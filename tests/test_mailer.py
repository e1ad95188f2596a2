"""System mail (confirmations) goes to the first configured relay, or to the Maildir outbox."""

from __future__ import annotations

import mailbox
import socket
from email.message import EmailMessage
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller

from missiva.config import Settings
from missiva.delivery import mailer


class Sink:
    def __init__(self) -> None:
        self.received: list[tuple[str, list[str], bytes]] = []

    async def handle_DATA(self, server, session, envelope):
        self.received.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content))
        return "250 OK"


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _message() -> EmailMessage:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "news@example.com", "anna@example.com", "Conferma"
    msg.set_content("link\n")
    return msg


def test_system_mail_uses_the_first_relay_of_the_list(tmp_path: Path):
    sink = Sink()
    port = _port()
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        settings = Settings.from_env(
            {
                "MISSIVA_DATA_DIR": str(tmp_path),
                "MISSIVA_SMTP_URL": f"smtp://127.0.0.1:{port}#weight=3, smtp://127.0.0.1:1",
            }
        )
        mailer.send(settings, _message())
    finally:
        controller.stop()
    [(sender, rcpts, data)] = sink.received
    assert (sender, rcpts) == ("news@example.com", ["anna@example.com"]) and b"Subject: Conferma" in data
    assert not (tmp_path / "outbox").exists()


def test_without_a_relay_mail_goes_to_the_outbox_and_a_bad_relay_url_is_named(tmp_path: Path):
    mailer.send(Settings.from_env({"MISSIVA_DATA_DIR": str(tmp_path)}), _message())
    assert [m["Subject"] for m in mailbox.Maildir(tmp_path / "outbox")] == ["Conferma"]
    bad = Settings.from_env({"MISSIVA_DATA_DIR": str(tmp_path), "MISSIVA_SMTP_URL": "ftp://relay.example"})
    with pytest.raises(mailer.MailError, match="MISSIVA_SMTP_URL"):
        mailer.send(bad, _message())
