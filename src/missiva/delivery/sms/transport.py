"""The contract every SMS transport keeps, so the send ledger can promise no duplicates.

A submit either returns a :class:`SubmitResult` or raises exactly one of:

- :class:`NotSent`: nothing reached the SMSC/gateway (connection down before the write, throttled
  on the first part). Safe to try again, here or on another transport.
- :class:`Uncertain`: the request was written but no answer came back (the connection dropped, the
  response timed out). It may have been accepted: the caller must not resend blindly.
- :class:`Rejected`: the SMSC/gateway answered no. Trying again elsewhere does not help.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class SubmitResult:
    """Accepted: one message id per part, in part order (receipts refer to these ids)."""

    msg_ref: str
    message_ids: list[str]
    segments: int
    encoding: str
    transport: str


class SmsTransportError(Exception):
    """Base of the submit outcomes that are not an acceptance."""

    def __init__(self, msg_ref: str, reason: str) -> None:
        super().__init__(f"{msg_ref}: {reason}")
        self.msg_ref = msg_ref
        self.reason = reason


class NotSent(SmsTransportError):
    """Definitely not accepted: nothing was written, or the first part was refused as a retryable."""


class Uncertain(SmsTransportError):
    """Written but unanswered: it may have been accepted. ``accepted_message_ids`` lists parts known
    accepted before the uncertainty (for a concatenated message that was cut short)."""

    def __init__(self, msg_ref: str, reason: str, accepted_message_ids: list[str] | None = None) -> None:
        super().__init__(msg_ref, reason)
        self.accepted_message_ids = accepted_message_ids or []


class Rejected(SmsTransportError):
    """Refused by the peer with ``command_status`` (SMPP status, or HTTP status for a gateway)."""

    def __init__(
        self,
        msg_ref: str,
        command_status: int,
        detail: str = "",
        accepted_message_ids: list[str] | None = None,
    ) -> None:
        super().__init__(
            msg_ref, f"rejected with status {command_status} (0x{command_status:x}) {detail}".rstrip()
        )
        self.command_status = command_status
        self.detail = detail
        self.accepted_message_ids = accepted_message_ids or []


class SmsTransport(Protocol):
    """Anything that can submit one SMS under the contract above."""

    @property
    def name(self) -> str:
        """Stable name, recorded with each result and event."""
        ...

    async def submit(self, msg_ref: str, dest: str, source: str, text: str) -> SubmitResult:
        """Submit ``text`` from ``source`` to ``dest``; ``msg_ref`` is the ledger's key for it."""
        ...
