"""Outgoing mail: a pipelining SMTP pool over weighted relays, or a Maildir outbox when none is set.

Public API: `SmtpPool`, `Relay`, `MaildirOutbox`, `SendJob`, `SendResult`, `SendStatus`, `classify`,
`retry_delay`, and `open_transport` to pick one from the configuration. A relay's rate is shared
across processes through a `SlotSource` (`missiva.delivery.smtp.rate`).
"""

from __future__ import annotations

import ssl
from collections.abc import Sequence
from pathlib import Path

from missiva.delivery.smtp.connection import SmtpConnection
from missiva.delivery.smtp.errors import SessionLost, SmtpConnectError, SmtpError
from missiva.delivery.smtp.maildir import MaildirOutbox
from missiva.delivery.smtp.pool import NoRelayAvailable, SmtpPool
from missiva.delivery.smtp.rate import Grant, SlotSource
from missiva.delivery.smtp.relay import Relay, RelayConfigError, TlsMode
from missiva.delivery.smtp.result import SendResult, SendStatus, classify, retry_delay
from missiva.delivery.smtp.transport import MailTransport, SendJob

__all__ = [
    "Grant",
    "MailTransport",
    "MaildirOutbox",
    "NoRelayAvailable",
    "Relay",
    "RelayConfigError",
    "SendJob",
    "SendResult",
    "SendStatus",
    "SessionLost",
    "SlotSource",
    "SmtpConnectError",
    "SmtpConnection",
    "SmtpError",
    "SmtpPool",
    "TlsMode",
    "classify",
    "open_transport",
    "retry_delay",
]


def open_transport(
    relays: Sequence[Relay],
    outbox: str | Path,
    *,
    ssl_context: ssl.SSLContext | None = None,
    slot_source: SlotSource | None = None,
) -> MailTransport:
    """The SMTP pool when relays are configured, otherwise the Maildir outbox at ``outbox``.

    With `slot_source`, relay rates are shared with every process using the same source.
    """
    if relays:
        return SmtpPool(relays, ssl_context=ssl_context, slot_source=slot_source)
    return MaildirOutbox(outbox)
