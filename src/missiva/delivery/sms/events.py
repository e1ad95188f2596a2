"""What comes back from the network after a submit: delivery receipts and inbound (MO) messages."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class ReceiptState(StrEnum):
    """Final state of a submitted part, reduced to what the ledger distinguishes."""

    DELIVERED = "delivered"
    EXPIRED = "expired"
    UNDELIVERABLE = "undeliverable"
    REJECTED = "rejected"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class Receipt:
    """A delivery receipt for one submitted part.

    ``message_id`` is the id the SMSC or gateway returned at submit time; ``raw_status`` keeps the
    carrier's own word (``DELIVRD``, ``UNDELIV``, a gateway status string) for reports.
    """

    message_id: str
    state: ReceiptState
    err: str | None = None
    recipient: str = ""
    raw_status: str = ""
    transport: str = ""


@dataclass(frozen=True, slots=True)
class InboundSms:
    """A mobile-originated message: a reply such as "STOP" from ``source`` to our number ``dest``."""

    source: str
    dest: str
    text: str
    transport: str = ""
