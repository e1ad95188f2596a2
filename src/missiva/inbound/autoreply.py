"""Auto-replies (RFC 3834 and out-of-office heuristics) and unsubscribe requests sent by mail."""

from __future__ import annotations

import re
from email.message import Message

from missiva.inbound import mime

# Subjects of out-of-office and auto-reply messages in English, Italian, German, French and Spanish,
# as the common clients (Outlook, Exchange, Gmail, Apple Mail, Thunderbird, Zimbra) write them.
_SUBJECT = re.compile(
    r"\bauto[ _-]?(matic )?(reply|replied|response|respon[ds]\w*)\b"
    r"|\bautomatische antwort|\brisposta automatica|\br[ée]ponse automatique|\brespuesta autom[aá]tica"
    r"|\bout of (the )?office\b|\bon vacation\b|\bvacation (reply|notice|message)\b|\baway from (the "
    r"|my )?(office|desk)\b"
    r"|\babwesen(d|heit)|\bau(ss|ß)er (haus|büro|dienst)|\bnicht im büro"
    r"|^\s*absence\b|\bmessage d'absence|\babsence du bureau|\bhors du bureau|\ben vacances\b"
    r"|\bfuori (sede|ufficio)|\bin ferie\b|\bassente\b|\bassenza\b"
    r"|\bfuera de la oficina|\bausente\b|\bde vacaciones\b",
    re.I,
)
_UNSUBSCRIBE_SUBJECT = re.compile(r"^\s*((re|aw|fwd?|tr|r)\s*:\s*)*unsubscribe\b", re.I)
_UNSUBSCRIBE_BODY = re.compile(r"^\s*unsubscribe\b", re.I)


def is_autoreply(message: Message) -> bool:
    """Whether the message announces itself as automatic (RFC 3834 and de facto headers) or reads as one."""
    submitted = mime.header_text(message, "Auto-Submitted").strip().lower()
    if submitted and not submitted.startswith("no"):
        return True
    for name in ("X-Autoreply", "X-Autorespond", "X-Autoresponse"):
        value = mime.header_text(message, name).strip().lower()
        if value and value not in {"no", "false", "0"}:
            return True
    if "auto_reply" in mime.header_text(message, "Precedence").lower():
        return True
    if mime.header_text(message, "X-Precedence").lower() == "auto_reply":
        return True
    return bool(_SUBJECT.search(mime.header_text(message, "Subject")))


def is_unsubscribe_subject(message: Message) -> bool:
    """A mail to the List-Unsubscribe address: its subject is "unsubscribe" (clients send exactly that)."""
    return bool(_UNSUBSCRIBE_SUBJECT.match(mime.header_text(message, "Subject")))


def is_unsubscribe_body(body: str) -> bool:
    """A body whose first words are "unsubscribe", the other form mailto: unsubscribe requests take."""
    return bool(_UNSUBSCRIBE_BODY.match(body[:200]))
