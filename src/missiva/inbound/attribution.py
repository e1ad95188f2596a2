"""Which mailing and recipient an inbound message is about.

First choice is a VERP address we minted (authenticated by its HMAC tag): the envelope recipient of
the bounce, its To/Delivered-To/X-Original-To headers, or the Return-Path quoted in the original.
Failing that, the X-Missiva-Mailing / X-Missiva-Recipient headers we put on every message, read from the
original embedded in the report (or quoted in its text by MTAs that do not attach it).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from email.message import Message

from missiva.inbound import mime, verp
from missiva.inbound.arf import ORIGINAL_TYPES, original_headers

ENVELOPE_HEADERS = ("Delivered-To", "X-Original-To", "Envelope-To", "X-Envelope-To", "X-Rcpt-To", "To", "Cc")
SCAN_CHARS = 128 * 1024

_VERP_TOKEN = re.compile(
    r"[A-Za-z0-9._=-]{1,64}\+m\d{1,18}\.r\d{1,18}\.[A-Za-z2-7]{8,12}@[A-Za-z0-9.-]{1,253}"
)
_MAILING = re.compile(r"^X-Missiva-Mailing:[ \t]*(\d{1,18})[ \t\r]*$", re.I | re.M)
_RECIPIENT = re.compile(r"^X-Missiva-Recipient:[ \t]*(\d{1,18})[ \t\r]*$", re.I | re.M)


def identify(
    top: Message,
    parts: list[mime.Part],
    text: str,
    *,
    secret: bytes | None,
    envelope_recipients: Iterable[str] = (),
) -> tuple[int | None, int | None, bool]:
    """Return ``(mailing_id, recipient_id, verified)``; the ids may be None when nothing says them.

    ``verified`` is True only for ids read from a VERP address whose tag checked out. Ids from the
    X-Missiva-* headers are a hint anyone can write, so callers must corroborate them.
    """
    text = text[:SCAN_CHARS]
    if secret:
        candidates: list[str] = list(envelope_recipients)
        for name in ENVELOPE_HEADERS:
            candidates.extend(mime.header_values(top, name))
        for part in parts:
            if part.content_type in ORIGINAL_TYPES:
                for headers in original_headers(part.message):
                    candidates.extend(mime.header_values(headers, "Return-Path"))
        for source in [*candidates, text]:
            for token in _VERP_TOKEN.findall(source):
                ids = verp.decode(token, secret=secret)
                if ids is not None:
                    return ids[0], ids[1], True
    mailing = recipient = None
    for part in parts:
        if part.content_type in ORIGINAL_TYPES:
            for headers in original_headers(part.message):
                mailing = mailing if mailing is not None else _int_header(headers, "X-Missiva-Mailing")
                recipient = (
                    recipient if recipient is not None else _int_header(headers, "X-Missiva-Recipient")
                )
    if mailing is None and (m := _MAILING.search(text)):
        mailing = int(m.group(1))
    if recipient is None and (m := _RECIPIENT.search(text)):
        recipient = int(m.group(1))
    return mailing, recipient, False


def _int_header(headers: Message, name: str) -> int | None:
    value = mime.header_text(headers, name).strip()
    return int(value) if value.isdigit() and len(value) <= 18 else None
