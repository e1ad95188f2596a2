"""The minimal mail path: one message to an SMTP relay, or into the Maildir outbox when none is set.

Used for system mail (subscription confirmations, test sends) until the sending engine takes over.
"""

from __future__ import annotations

import mailbox
import smtplib
import ssl
from email.message import EmailMessage
from pathlib import Path

from missiva.config import Settings
from missiva.delivery.configuration import parse_relays
from missiva.delivery.smtp import Relay, RelayConfigError
from missiva.delivery.smtp.relay import TlsMode


class MailError(Exception):
    """A message could not be handed to the relay or written to the outbox."""


def outbox_path(settings: Settings) -> Path:
    """Where messages go when no relay is configured."""
    return settings.data_dir / "outbox"


def send(settings: Settings, message: EmailMessage) -> None:
    """Deliver `message` through `MISSIVA_SMTP_URL`, or store it in the Maildir outbox."""
    if settings.smtp_url:
        try:
            relays = parse_relays(settings.smtp_url)
        except RelayConfigError as exc:
            raise MailError(f"MISSIVA_SMTP_URL: {exc}") from exc
        if relays:
            # MISSIVA_SMTP_URL may list several weighted relays for mailings; system mail uses the first.
            _send_smtp(relays[0], message)
            return
    box = mailbox.Maildir(outbox_path(settings), create=True)
    box.add(message)
    box.close()


def _send_smtp(relay: Relay, message: EmailMessage) -> None:
    """One message over one session (system mail is rare: no pool needed)."""
    try:
        if relay.tls is TlsMode.IMPLICIT:
            client: smtplib.SMTP = smtplib.SMTP_SSL(
                relay.host, relay.port, timeout=30, context=ssl.create_default_context()
            )
        else:
            client = smtplib.SMTP(relay.host, relay.port, timeout=30)
        with client:
            if relay.tls is TlsMode.STARTTLS:
                client.starttls(context=ssl.create_default_context())
            if relay.username:
                client.login(relay.username, relay.password or "")
            client.send_message(message)
    except (OSError, smtplib.SMTPException) as exc:
        raise MailError(f"could not send through {relay.name}: {exc}") from exc
