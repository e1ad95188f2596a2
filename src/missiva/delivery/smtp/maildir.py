"""Maildir outbox: where messages go when no relay is configured (development, air-gapped installs).

Each message is written as a local delivery agent would: ``Return-Path`` (the VERP envelope sender)
and ``Delivered-To`` on top, LF line ends, into ``tmp/`` then moved to ``new/`` by
`mailbox.Maildir`, so a reader never sees half a file.
"""

from __future__ import annotations

import mailbox
from collections.abc import AsyncIterable, AsyncIterator, Iterable
from pathlib import Path
from types import TracebackType

from missiva.delivery.smtp.result import SendResult, SendStatus, no_reply
from missiva.delivery.smtp.transport import SendJob, iterate_jobs


class MaildirOutbox:
    """A `MailTransport` that files messages into a Maildir instead of sending them."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._box = mailbox.Maildir(self.path, factory=None, create=True)

    @property
    def window(self) -> int:
        """Messages are written one at a time: nothing is ever in flight between calls."""
        return 1

    async def __aenter__(self) -> MaildirOutbox:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def send(self, envelope_from: str, recipient: str, data: bytes) -> SendResult:
        """File one message; a disk error is a soft failure (the caller retries later)."""
        if any(char in envelope_from + recipient for char in "\r\n<>"):
            return no_reply(SendStatus.FAILED, f"invalid address {recipient!r} or {envelope_from!r}")
        trace = f"Return-Path: <{envelope_from}>\nDelivered-To: {recipient}\n".encode()
        try:
            key = self._box.add(trace + data.replace(b"\r\n", b"\n"))
        except OSError as exc:
            return no_reply(SendStatus.SOFT_FAIL, f"cannot write to Maildir {self.path}: {exc}")
        return SendResult(SendStatus.SENT, 250, "2.0.0", f"stored in Maildir as {key}")

    async def send_stream(
        self, jobs: AsyncIterable[SendJob] | Iterable[SendJob]
    ) -> AsyncIterator[tuple[SendJob, SendResult]]:
        """File each job in order, yielding it with its result."""
        async for job in iterate_jobs(jobs):
            yield job, await self.send(job.envelope_from, job.recipient, job.data)

    async def close(self) -> None:
        """Nothing to release: every message is complete on disk when `send` returns."""
