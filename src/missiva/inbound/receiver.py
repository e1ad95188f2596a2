"""Inbound SMTP receiver (aiosmtpd) for bounces, feedback-loop complaints and unsubscribe mails.

It accepts mail only for our own addresses on the bounce domain: signed VERP return paths
(`bounces+m<mailing>.r<recipient>.<tag>@`), the unsubscribe mailto of List-Unsubscribe
(`unsubscribe+<token>@`) and the complaint addresses (`fbl@`, `abuse@`). Everything else is refused at
RCPT, so the receiver is no open relay and forged VERP addresses never get in. Each accepted message is
spooled to disk before the 250 answer.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from missiva.config import Settings
from missiva.inbound import spool, verp
from missiva.keys import derived_secret

log = logging.getLogger(__name__)

COMPLAINT_LOCAL_PARTS = ("fbl", "abuse", "complaints")


def accepts(settings: Settings, address: str) -> bool:
    """Whether `address` is one of ours (checked at RCPT time)."""
    local, _, domain = address.strip().strip("<>").rpartition("@")
    if domain.lower() != settings.bounce_domain or not local:
        return False
    low = local.lower()
    if low in COMPLAINT_LOCAL_PARTS:
        return True
    if low.startswith("unsubscribe+") and len(local) > len("unsubscribe+"):
        return True
    if low.startswith("bounces+"):
        return verp.decode(address, secret=derived_secret("verp", settings.secret_key)) is not None
    return False


class Handler:
    """aiosmtpd handler: filter recipients, spool messages, then notify."""

    def __init__(self, settings: Settings, on_message: Callable[[str], None] | None = None) -> None:
        self.settings = settings
        self.on_message = on_message

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        if not accepts(self.settings, address):
            return "550 5.1.1 No such recipient here"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        try:
            key = spool.store(self.settings, raw, envelope.rcpt_tos)
        except OSError:
            log.exception("could not spool an inbound message")
            return "451 4.3.0 Temporary failure, please retry"
        if self.on_message is not None:
            try:
                self.on_message(key)
            except Exception:
                log.exception("inbound notification failed for %s", key)
        return "250 2.0.0 Accepted"


def _free_port(host: str) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


class _LenientSMTP(SMTP):
    """Bounces quote original messages whose lines break RFC 5321's 1,000-octet limit; take them
    (the message size limit still bounds what we read)."""

    line_length_limit = 64 * 1024


class _Controller(Controller):
    def factory(self) -> SMTP:
        return _LenientSMTP(self.handler, **self.SMTP_kwargs)


class Receiver:
    """The SMTP listener; `start()`/`stop()` run it in a background thread."""

    def __init__(
        self, settings: Settings, on_message: Callable[[str], None] | None = None, *, port: int | None = None
    ) -> None:
        self.settings = settings
        chosen = port if port is not None else (settings.inbound_port or 2525)
        if chosen == 0:  # aiosmtpd probes its own port once started, so it needs a concrete one
            chosen = _free_port(settings.inbound_host)
        self.controller = _Controller(
            Handler(settings, on_message),
            hostname=settings.inbound_host,
            port=chosen,
            data_size_limit=settings.inbound_max_bytes,
            server_hostname=settings.bounce_domain,
            ready_timeout=10,
        )

    def start(self) -> tuple[str, int]:
        """Start listening; the bound (host, port)."""
        self.controller.start()
        return self.controller.hostname, self.controller.port

    def stop(self) -> None:
        """Stop listening."""
        self.controller.stop()
