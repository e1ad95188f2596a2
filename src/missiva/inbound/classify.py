"""Classify an inbound message: hard or soft bounce, complaint, auto-reply, unsubscribe request, or unknown.

The order of the checks is the order of trust: a feedback report or an RFC 3464 report says what it is
in machine-readable form; an unsubscribe mail and an auto-reply are recognised by their headers and
subject; only then are free-text bounces of non-standard MTAs guessed at. Nothing here touches a
database or the network, and nothing raises on the content of the message.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from email.message import Message
from email.utils import getaddresses

from missiva.inbound import arf, attribution, autoreply, dsn, heuristics, mime, smtp_status

DIAGNOSTIC_CHARS = 300
REASON_CHARS = 8 * 1024  # of the human-readable part of a DSN, searched when the fields say too little


class Kind(enum.StrEnum):
    """What an inbound message means for the recipient it is about."""

    HARD = "hard"  # the address is dead: suppress it
    SOFT = "soft"  # a transient or policy failure: count it, do not suppress on one
    COMPLAINT = "complaint"  # the recipient reported us as spam
    AUTOREPLY = "autoreply"  # out-of-office and other automatic answers
    UNSUBSCRIBE = "unsubscribe"  # the recipient asked to leave by mail
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class Classification:
    """The verdict on one inbound message."""

    kind: Kind
    status: str | None = None  # enhanced status code such as "5.1.1"
    recipient: str | None = None  # the failed/complaining address, lowercased
    mailing_id: int | None = None
    recipient_id: int | None = None
    diagnostic: str = ""
    verified: bool = False  # the ids come from a VERP address with a valid tag (not from plain headers)

    def to_dict(self) -> dict[str, str | int | None]:
        """A JSON-ready dict (kind as its string value)."""
        data = asdict(self)
        data["kind"] = str(self.kind)
        return data


@dataclass(frozen=True, slots=True)
class _Verdict:
    kind: Kind
    status: str | None
    recipient: str | None
    diagnostic: str


def classify(
    raw: bytes, *, verp_secret: bytes | None = None, envelope_recipients: Iterable[str] = ()
) -> Classification:
    """Classify the raw bytes of an inbound message.

    ``verp_secret`` authenticates VERP addresses (mailing and recipient ids are only taken from VERP
    when it is given); ``envelope_recipients`` are the SMTP RCPT TO addresses when the receiver knows
    them, the most reliable place for the VERP address. Raises TypeError only for a non-bytes ``raw``.
    """
    if not isinstance(raw, bytes | bytearray | memoryview):
        raise TypeError(f"classify() needs the raw message as bytes, got {type(raw).__name__}")
    top = mime.parse(bytes(raw))
    parts = list(mime.walk(top))
    full_text = heuristics.first_text(parts)  # non-MIME bounces quote the original in it
    verdict = _verdict(top, parts, heuristics.cut_original(full_text))
    mailing_id, recipient_id, verified = attribution.identify(
        top, parts, full_text, secret=verp_secret, envelope_recipients=envelope_recipients
    )
    return Classification(
        kind=verdict.kind,
        status=verdict.status,
        recipient=verdict.recipient,
        mailing_id=mailing_id,
        recipient_id=recipient_id,
        diagnostic=" ".join(verdict.diagnostic.split())[:DIAGNOSTIC_CHARS],
        verified=verified,
    )


def _verdict(top: Message, parts: list[mime.Part], text: str) -> _Verdict:
    feedback = arf.read(parts, top)
    if feedback is not None:
        return _from_feedback(feedback)
    for part in parts:
        if part.content_type in dsn.DSN_TYPES:
            reports = dsn.reports(part.message)
            if reports:
                return _from_dsn(reports, text)
    sender = _sender(top)
    if autoreply.is_unsubscribe_subject(top):
        return _Verdict(Kind.UNSUBSCRIBE, None, sender, "unsubscribe request (subject)")
    ses = heuristics.ses_notification(text)
    if ses is not None:
        return _from_ses(ses)
    if heuristics.looks_like_bounce(top):
        return _from_text(top, text)
    if autoreply.is_autoreply(top):
        return _Verdict(Kind.AUTOREPLY, None, sender, "auto-reply: " + mime.header_text(top, "Subject"))
    if autoreply.is_unsubscribe_body(text):
        return _Verdict(Kind.UNSUBSCRIBE, None, sender, "unsubscribe request (body)")
    return _Verdict(Kind.UNKNOWN, None, None, "")


def _from_feedback(feedback: arf.Feedback) -> _Verdict:
    if feedback.feedback_type in arf.COMPLAINT_TYPES:
        kind = Kind.COMPLAINT
    elif feedback.feedback_type in arf.UNSUBSCRIBE_TYPES:
        kind = Kind.UNSUBSCRIBE
    else:
        kind = Kind.UNKNOWN
    return _Verdict(kind, None, feedback.recipient, feedback.diagnostic)


def _from_dsn(reports: list[dsn.RecipientReport], text: str) -> _Verdict:
    report = next(
        (r for r in reports if r.action == "failed"),
        next((r for r in reports if r.action == "delayed"), reports[0]),
    )
    code = smtp_status.best_code(report.diagnostic, report.status)
    reason = smtp_status.find_reason(report.diagnostic, text[:REASON_CHARS])
    if report.action in ("delivered", "relayed", "expanded") or (code or "").startswith("2."):
        return _Verdict(Kind.UNKNOWN, code, report.recipient, f"{report.action}: {report.diagnostic}")
    temporary = report.action == "delayed"
    status_class = "4" if temporary else "5"
    code = smtp_status.refine(code, reason, (code or status_class)[0])
    diagnostic = report.diagnostic or text.strip()
    return _Verdict(
        _bounce_kind(code, diagnostic + " " + text, reason, temporary), code, report.recipient, diagnostic
    )


def _from_text(top: Message, text: str) -> _Verdict:
    exclude = {
        a.lower() for _, a in getaddresses(mime.header_values(top, "To") + mime.header_values(top, "From"))
    }
    found = heuristics.read(top, text, exclude)
    segment = found.segment
    code = smtp_status.best_code(segment)
    reason = smtp_status.find_reason(segment)
    if code is None and reason is None:  # some reports give the reason before the address (Notes)
        segment = text[: heuristics.REPORT_CHARS]
        code = smtp_status.best_code(segment)
        reason = smtp_status.find_reason(segment)
    basic = smtp_status.basic_code(segment)
    status_class = (code or basic or ("4" if found.delayed else "5"))[0]
    code = smtp_status.refine(code, reason, status_class)
    temporary = found.delayed or status_class == "4"
    diagnostic = _diagnostic_line(segment, found.recipient)
    return _Verdict(_bounce_kind(code, segment, reason, temporary), code, found.recipient, diagnostic)


def _from_ses(ses: heuristics.SesNotification) -> _Verdict:
    if ses.kind == "complaint":
        return _Verdict(Kind.COMPLAINT, None, ses.recipient, ses.diagnostic)
    reason = smtp_status.find_reason(ses.diagnostic)
    code = smtp_status.refine(smtp_status.best_code(ses.diagnostic, ses.status), reason, "5")
    temporary = ses.kind != "bounce_permanent"
    return _Verdict(
        _bounce_kind(code, ses.diagnostic, reason, temporary), code, ses.recipient, ses.diagnostic
    )


def failure_kind(
    status: str | None, diagnostic: str, *, temporary: bool, unrecognised: Kind | None = None
) -> tuple[Kind, str | None]:
    """Hard or soft for a failure a provider reported as data (status code and diagnostic text).

    Provider webhooks go through the same rules as bounce mails, so "5.7.1 blocked as spam" is soft
    whichever way it arrives. `unrecognised` is the provider's own verdict, used when neither a status
    code nor a known reason says more. Returns the kind and the refined enhanced status code.
    """
    reason = smtp_status.find_reason(diagnostic)
    code = smtp_status.refine(smtp_status.best_code(diagnostic, status), reason, "4" if temporary else "5")
    if code is None and reason is None and unrecognised is not None:
        return unrecognised, None
    return _bounce_kind(code, diagnostic, reason, temporary), code


def _bounce_kind(code: str | None, text: str, reason: smtp_status.Reason | None, temporary: bool) -> Kind:
    if temporary and not (code and code.startswith("5.") and reason and reason.permanent):
        return Kind.SOFT
    return Kind.HARD if smtp_status.is_hard(code, text, reason) else Kind.SOFT


def _diagnostic_line(segment: str, recipient: str | None) -> str:
    """The most informative lines of a text report: those after the recipient that carry a code or reason."""
    lines = [line.strip() for line in segment.splitlines() if line.strip()]
    if recipient and lines and recipient in lines[0].lower() and len(lines[0]) < len(recipient) + 4:
        lines = lines[1:]
    return " ".join(lines[:4])


def _sender(top: Message) -> str | None:
    for _, address in getaddresses(mime.header_values(top, "From")):
        found = dsn.address(address)
        if found:
            return found
    return None
