"""The minimal mail path: one message to an SMTP relay, or into the Maildir outbox when none is set.

Used for system mail (subscription confirmations, test sends) until the sending engine takes over.
"""

from __future__ import annotations

import mailbox
import smtplib
import ssl
from email.message import EmailMessage
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from missiva.config import Settings


class MailError(Exception):
    """A message could not be handed to the relay or written to the outbox."""


def outbox_path(settings: Settings) -> Path:
    """Where messages go when no relay is configured."""
    return settings.data_dir / "outbox"


def send(settings: Settings, message: EmailMessage) -> None:
    """Deliver `message` through `MISSIVA_SMTP_URL`, or store it in the Maildir outbox."""
    if settings.smtp_url:
        # MISSIVA_SMTP_URL may list several weighted relays for mailings; system mail uses the first.
        first = settings.smtp_url.split(",")[0].strip().partition("#")[0]
        _send_smtp(first, message)
    else:
        box = mailbox.Maildir(outbox_path(settings), create=True)
        box.add(message)
        box.close()


def _send_smtp(url: str, message: EmailMessage) -> None:
    """smtp://user:pass@host:port[?starttls=1] or smtps://... ."""
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    host = parts.hostname or "127.0.0.1"
    timeout = 30
    try:
        if parts.scheme == "smtps":
            client: smtplib.SMTP = smtplib.SMTP_SSL(
                host, parts.port or 465, timeout=timeout, context=ssl.create_default_context()
            )
        else:
            client = smtplib.SMTP(host, parts.port or 25, timeout=timeout)
        with client:
            if parts.scheme == "smtp" and query.get("starttls", ["0"])[0] in ("1", "true"):
                client.starttls(context=ssl.create_default_context())
            if parts.username:
                client.login(unquote(parts.username), unquote(parts.password or ""))
            client.send_message(message)
    except (OSError, smtplib.SMTPException) as exc:
        raise MailError(f"could not send through {host}: {exc}") from exc
