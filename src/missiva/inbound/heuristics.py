"""Bounces that are not RFC 3464 DSNs: plain-text reports of qmail, Exim, old Exchange, Domino, Yahoo...

Such reports are recognised by who sends them and by their subject; the failed recipients are found
with flufl.bounce's per-MTA detectors, falling back to the first address of the report text, and the
status is read from the text that follows that recipient.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from email.message import Message

import flufl.bounce

from missiva.inbound import dsn, mime

log = logging.getLogger(__name__)

REPORT_CHARS = 64 * 1024
SEGMENT_CHARS = 1500

_BOUNCE_SENDER = re.compile(r"mailer-daemon|postmaster|mail delivery (subsystem|system)|mdaemon|bounce", re.I)
_BOUNCE_SUBJECT = re.compile(
    r"undeliver|undelivered|delivery (status notification|failure|failed|notification|problem)|failure notice"
    r"|mail delivery failed|returned mail|returning message|mail failure|delivery failure"
    r"|could not be delivered"
    r"|non remis|non recapitabile|unzustellbar|no se puede entregar|mail system error|failed mail"
    r"|nondeliverable"
    r"|warning: (could not send|message .* delayed)|delayed mail|notice: mail delivery status"
    r"|nicht zustellbar",
    re.I,
)
_DELAY = re.compile(
    r"\bdelayed\b|\(delay\)|still being retried|will (continue|keep) trying|will be retried"
    r"|has not yet been delivered"
    r"|this is a warning|warning message only|not yet been delivered",
    re.I,
)
# Lines after which a report quotes the original message: addresses there are not failed recipients.
_ORIGINAL_MARKER = re.compile(
    r"^.{0,40}(below this line is a copy|this is a copy of (the|your) message|original message"
    r"|the header of the original message|below is a copy of the original|returned message"
    r"|message text follows|returned mail follows|original message headers|original message follows"
    r"|en-t[eê]tes de message d'origine|intestazioni originali|ursprüngliche nachrichtenkopfzeilen)",
    re.I | re.MULTILINE,
)
_ADDRESS = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")
_NOT_A_RECIPIENT = re.compile(r"^(mailer-daemon|postmaster|abuse|noreply|no-reply)@", re.I)


@dataclass(frozen=True, slots=True)
class TextReport:
    """What the text of a non-standard bounce says about its first failed recipient."""

    recipient: str | None
    segment: str  # the report text about that recipient
    delayed: bool


def looks_like_bounce(message: Message) -> bool:
    """Whether the sender and subject make this a non-delivery report."""
    sender = mime.header_text(message, "From")
    subject = mime.header_text(message, "Subject")
    if _BOUNCE_SUBJECT.search(subject):
        return True
    auto = mime.header_text(message, "Auto-Submitted").lower()
    return bool(_BOUNCE_SENDER.search(sender)) and ("failure" in auto or not auto)


def first_text(parts: list[mime.Part]) -> str:
    """The first non-empty text part of the report itself (not of an attached original)."""
    for part in parts:
        if part.content_type in ("text/plain", "text/html") and not part.embedded:
            text = mime.part_text(part.message, REPORT_CHARS)
            if text.strip():
                return text
    return ""


def cut_original(text: str) -> str:
    """``text`` up to the line that introduces the quoted original message."""
    match = _ORIGINAL_MARKER.search(text)
    return text[: match.start()] if match and match.start() > 0 else text


def read(message: Message, text: str, exclude: set[str]) -> TextReport:
    """Find the first failed recipient in a plain-text report and the text that explains it."""
    # flufl's detectors know where each MTA lists failed recipients; the first address of the text is a
    # guess, so there the bounce's own From and To (our return path) are ruled out.
    candidates = _flufl_recipients(message)
    lowered = text.lower()
    if not candidates:
        candidates = [a.lower() for a in _ADDRESS.findall(text) if a.lower() not in exclude]
    candidates = [a for a in dict.fromkeys(candidates) if not _NOT_A_RECIPIENT.match(a)]
    positions = sorted((lowered.find(a), a) for a in candidates)
    found = [(pos, a) for pos, a in positions if pos >= 0]
    if found:
        pos, recipient = found[0]
        end = pos + SEGMENT_CHARS
        for other_pos, other in found[1:]:
            if other != recipient and other_pos > pos + len(recipient):
                end = min(end, other_pos)
                break
        segment = text[pos:end]
    elif candidates:
        recipient, segment = candidates[0], text[:SEGMENT_CHARS]
    else:
        recipient, segment = None, text[:SEGMENT_CHARS]
    subject = mime.header_text(message, "Subject")
    delayed = bool(_DELAY.search(subject) or _DELAY.search(text[:4000]))
    return TextReport(recipient, segment, delayed)


def _flufl_recipients(message: Message) -> list[str]:
    """Failed recipients according to flufl.bounce's detectors, permanent ones first."""
    try:
        temporary, permanent = flufl.bounce.all_failures(message)
    except Exception:  # a detector tripping on hostile input must not stop the classification
        log.debug("flufl.bounce failed on a message", exc_info=True)
        return []
    out = []
    for raw in [*permanent, *temporary]:
        value = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
        found = dsn.address(value)
        if found:
            out.append(found)
    return out


@dataclass(frozen=True, slots=True)
class SesNotification:
    """An Amazon SES bounce or complaint forwarded as JSON by an SNS e-mail subscription."""

    kind: str  # "bounce_permanent", "bounce_transient", "complaint"
    recipient: str | None
    status: str | None
    diagnostic: str


def ses_notification(text: str) -> SesNotification | None:
    """Parse the JSON body of an SES notification mail, if that is what ``text`` is."""
    start = text.find('{"notificationType"')
    if start < 0:
        return None
    try:
        # SNS hard-wraps the JSON line; the wraps fall inside strings, so they are simply removed.
        data, _ = json.JSONDecoder().raw_decode(text[start:].replace("\r", "").replace("\n", ""))
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    kind = str(data.get("notificationType", "")).lower()
    if kind == "bounce":
        bounce = data.get("bounce") if isinstance(data.get("bounce"), dict) else {}
        entries = bounce.get("bouncedRecipients") or [{}]
        first = entries[0] if isinstance(entries[0], dict) else {}
        permanent = str(bounce.get("bounceType", "")).lower() == "permanent"
        return SesNotification(
            "bounce_permanent" if permanent else "bounce_transient",
            dsn.address(str(first.get("emailAddress", ""))),
            str(first["status"]) if first.get("status") else None,
            str(first.get("diagnosticCode", "") or bounce.get("bounceSubType", "")),
        )
    if kind == "complaint":
        complaint = data.get("complaint") if isinstance(data.get("complaint"), dict) else {}
        entries = complaint.get("complainedRecipients") or [{}]
        first = entries[0] if isinstance(entries[0], dict) else {}
        return SesNotification(
            "complaint", dsn.address(str(first.get("emailAddress", ""))), None, "SES complaint"
        )
    return None
