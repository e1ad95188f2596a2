"""Feedback-loop reports: RFC 5965 ARF and Microsoft's JMRP (Hotmail/Outlook.com) complaints."""

from __future__ import annotations

import re
from dataclasses import dataclass
from email.message import Message
from email.parser import HeaderParser
from email.policy import compat32

from missiva.inbound import dsn, mime

FEEDBACK_TYPE = "message/feedback-report"
ORIGINAL_TYPES = frozenset({"message/rfc822", "text/rfc822-headers", "message/rfc822-headers"})

# Feedback types a recipient sends by pressing "spam" (or that say the mail was unwanted).
COMPLAINT_TYPES = frozenset({"abuse", "fraud", "virus", "other", ""})
UNSUBSCRIBE_TYPES = frozenset({"opt-out", "opt-out-list"})
# not-spam, auth-failure (DMARC forensic reports) and unknown types say nothing about the recipient.

_JMRP_SUBJECT = re.compile(r"complaint about message from", re.I)


@dataclass(frozen=True, slots=True)
class Feedback:
    """What a feedback report tells: its type and whom the reported message was sent to."""

    feedback_type: str
    recipient: str | None
    diagnostic: str


def read(parts: list[mime.Part], top: Message) -> Feedback | None:
    """The feedback report in ``parts``, or None when the message is not a feedback report."""
    report = next((p for p in parts if p.content_type == FEEDBACK_TYPE), None)
    if report is not None:
        fields = _report_fields(report.message)
        feedback_type = fields.get("feedback-type", "").strip().lower()
        recipient = (
            dsn.address(fields.get("original-rcpt-to", ""))
            or dsn.address(fields.get("removal-recipient", ""))
            or _original_header(parts, "To")
        )
        return Feedback(feedback_type, recipient, f"feedback report: {feedback_type or 'unspecified'}")
    if _JMRP_SUBJECT.search(mime.header_text(top, "Subject")):
        recipient = _original_header(parts, "X-HmXmrOriginalRecipient")
        if recipient is not None:
            return Feedback("abuse", recipient, "feedback report: Microsoft JMRP complaint")
    return None


def _report_fields(part: Message) -> dict[str, str]:
    """Fields of a message/feedback-report part (the parser makes them the headers of a sub-message)."""
    fields: dict[str, str] = {}
    payload = part.get_payload()
    if isinstance(payload, list) and payload and isinstance(payload[0], Message):
        for name, value in payload[0].items():
            fields.setdefault(name.lower(), " ".join(str(value).split()))
        if fields:
            return fields
    for line in mime.part_text(part, 16 * 1024).splitlines():
        name, sep, value = line.partition(":")
        if sep and name and " " not in name.strip():
            fields.setdefault(name.strip().lower(), value.strip())
    return fields


def _original_header(parts: list[mime.Part], name: str) -> str | None:
    """An address header of the embedded original message, if it holds a real address."""
    for part in parts:
        if part.content_type not in ORIGINAL_TYPES:
            continue
        for headers in original_headers(part.message):
            for value in mime.header_values(headers, name):
                found = dsn.address(value)
                if found:
                    return found
    return None


def original_headers(part: Message) -> list[Message]:
    """The header block(s) of an embedded original, whether message/rfc822 or text/rfc822-headers."""
    payload = part.get_payload()
    if isinstance(payload, list):
        return [m for m in payload if isinstance(m, Message)]
    try:
        return [HeaderParser(policy=compat32).parsestr(mime.part_text(part, 64 * 1024))]
    except Exception:
        return []
