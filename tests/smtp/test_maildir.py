"""The Maildir outbox used when no relay is configured."""

from __future__ import annotations

import asyncio
import email.policy
import mailbox
from pathlib import Path

from missiva.delivery.smtp import MaildirOutbox, SendJob, SendStatus, open_transport
from missiva.messages.content import MessageContent
from missiva.messages.mime import MessageSkeleton, Recipient, SendingDomain


def test_outbox_files_parseable_messages_with_their_return_path(tmp_path: Path) -> None:
    skeleton = MessageSkeleton(
        MessageContent(subject="Hello [email]", html="<p>Hi</p>", from_address="news@example.com"),
        mailing_id=3,
        domain=SendingDomain("example.com", bounce_domain="bounce.example.com", verp_secret=b"test"),
    )
    messages = [
        skeleton.render(Recipient(i, f"r{i}@example.org", f"https://example.com/u/{i}", f"u+{i}@example.com"))
        for i in range(3)
    ]
    transport = open_transport([], tmp_path / "outbox")
    assert isinstance(transport, MaildirOutbox)

    async def run() -> list[SendStatus]:
        jobs = [SendJob(m.envelope_from, m.recipient, m.data) for m in messages]
        return [result.status async for _, result in transport.send_stream(jobs)]

    assert asyncio.run(run()) == [SendStatus.SENT] * 3
    box = mailbox.Maildir(tmp_path / "outbox", factory=None, create=False)
    parsed = sorted(
        (email.message_from_bytes(box.get_bytes(key), policy=email.policy.default) for key in box.iterkeys()),
        key=lambda message: str(message["To"]),
    )
    assert [str(message["To"]) for message in parsed] == [f"r{i}@example.org" for i in range(3)]
    assert [str(message["Return-Path"]) for message in parsed] == [f"<{m.envelope_from}>" for m in messages]
    assert str(parsed[1]["Subject"]) == "Hello r1@example.org"
    assert parsed[1]["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert parsed[1].get_body(("html",)).get_content().strip().endswith("<p>Hi</p></body></html>")


def test_outbox_refuses_addresses_with_line_breaks(tmp_path: Path) -> None:
    outbox = MaildirOutbox(tmp_path / "outbox")

    result = asyncio.run(
        outbox.send("a@example.com", "b@example.org\nBcc: c@example.net", b"Subject: x\r\n\r\n")
    )

    assert result.status is SendStatus.FAILED
    assert list(mailbox.Maildir(tmp_path / "outbox", create=False).keys()) == []
