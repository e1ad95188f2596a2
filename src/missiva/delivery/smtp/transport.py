"""What every outgoing-mail transport offers (SMTP pool, Maildir outbox), and the job it sends."""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from missiva.delivery.smtp.result import SendResult


@dataclass(slots=True)  # not frozen: one is made per message, and a frozen __init__ costs 4x
class SendJob:
    """One message for one recipient; ``ref`` is the caller's handle (e.g. its ledger row id)."""

    envelope_from: str
    recipient: str
    data: bytes
    ref: Any = None
    # The data's line ends are all CRLF already (a `MessageSkeleton` rendering): not checked again.
    crlf: bool = False


class MailTransport(Protocol):
    """Send messages one at a time or as a stream with back-pressure."""

    @property
    def window(self) -> int:
        """Most jobs a stream holds at once: after a crash, at most this many have an unknown fate."""
        ...

    async def send(self, envelope_from: str, recipient: str, data: bytes) -> SendResult:
        """Send one message; never raises for a delivery problem, the result says what happened."""
        ...

    def send_stream(
        self, jobs: AsyncIterable[SendJob] | Iterable[SendJob]
    ) -> AsyncIterator[tuple[SendJob, SendResult]]:
        """Send jobs as they come, yielding each with its result (in completion order)."""
        ...

    async def close(self) -> None:
        """Release connections and files."""
        ...


async def iterate_jobs(jobs: AsyncIterable[SendJob] | Iterable[SendJob]) -> AsyncIterator[SendJob]:
    """Accept plain and async iterables alike."""
    if isinstance(jobs, AsyncIterable):
        async for job in jobs:
            yield job
    else:
        for job in jobs:
            yield job
