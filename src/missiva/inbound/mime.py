"""Bounded MIME parsing for untrusted inbound mail.

Anyone on the internet can send us a "bounce", so parsing must stay cheap and must not raise
whatever the bytes are. The standard library parser is tolerant of broken MIME but recurses once per
nesting level (a 1,000-deep message exhausts the stack) and reads everything it is given, so we:

- keep only the first ``MAX_MESSAGE_BYTES`` of the message (what identifies a bounce, the report and
  the original headers, always comes first);
- neutralise container Content-Types past ``MAX_CONTAINERS`` so nesting depth is bounded before the
  parser sees the bytes;
- walk parts iteratively with a depth and count limit and decode at most ``MAX_TEXT_CHARS`` of each.
"""

from __future__ import annotations

import codecs
import email
import email.header
import email.policy
import re
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import Message

MAX_MESSAGE_BYTES = 2 * 1024 * 1024
MAX_CONTAINERS = 64
MAX_DEPTH = 16
MAX_PARTS = 256
MAX_TEXT_CHARS = 256 * 1024

# A Content-Type header (possibly folded) declaring a part the parser would descend into.
_CONTAINER_HEADER = re.compile(rb"(?im)^(content-type:(?:[ \t]|\r?\n[ \t])*)(multipart|message)/")
_TAG = re.compile(r"<[^>]{0,2000}>")
_ENTITY = re.compile(r"&(nbsp|lt|gt|amp|quot|#\d{1,5});")
_ENTITIES = {"nbsp": " ", "lt": "<", "gt": ">", "amp": "&", "quot": '"'}


@dataclass(frozen=True, slots=True)
class Part:
    """One MIME part met while walking, with how deep it sits."""

    message: Message
    content_type: str
    depth: int
    embedded: bool  # inside an attached original message (message/rfc822), not the report itself


def parse(raw: bytes) -> Message:
    """Parse at most MAX_MESSAGE_BYTES of ``raw`` with bounded nesting; never raises on content."""
    data = raw[:MAX_MESSAGE_BYTES]
    count = 0

    def _defuse(match: re.Match[bytes]) -> bytes:
        nonlocal count
        count += 1
        if count <= MAX_CONTAINERS:
            return match.group(0)
        return match.group(1) + b"x-too-deep-" + match.group(2) + b"/"

    data = _CONTAINER_HEADER.sub(_defuse, data)
    return email.message_from_bytes(data, policy=email.policy.compat32)


def walk(message: Message) -> Iterator[Part]:
    """Yield the parts depth-first in document order, without recursion and within the limits."""
    stack: list[tuple[Message, int, bool]] = [(message, 0, False)]
    seen = 0
    while stack and seen < MAX_PARTS:
        part, depth, embedded = stack.pop()
        seen += 1
        content_type = safe_content_type(part)
        yield Part(part, content_type, depth, embedded)
        if depth >= MAX_DEPTH:
            continue
        payload = part.get_payload()
        if isinstance(payload, list) and content_type != "message/delivery-status":
            children = [child for child in payload if isinstance(child, Message)]
            inner = embedded or (depth > 0 and content_type.startswith("message/"))
            stack.extend((child, depth + 1, inner) for child in reversed(children))


def safe_content_type(part: Message) -> str:
    """The part's content type, lowercased, falling back to text/plain when the header is garbage."""
    try:
        return part.get_content_type()
    except Exception:  # a malformed header must not stop the classification
        return "text/plain"


def header_text(message: Message, name: str) -> str:
    """A header decoded from RFC 2047 words into text ('' when absent or undecodable)."""
    value = message.get(name)
    if value is None:
        return ""
    try:
        if isinstance(value, email.header.Header):  # compat32's wrapper for raw 8-bit header bytes
            chunks = email.header.decode_header(value)
        else:
            chunks = email.header.decode_header(_undo_surrogates(str(value)))
    except Exception:
        return _undo_surrogates(str(value))
    out = []
    for chunk, charset in chunks:
        if isinstance(chunk, bytes):
            out.append(_decode_bytes(chunk, charset))
        else:
            out.append(chunk)
    return " ".join("".join(out).split())


def header_values(message: Message, name: str) -> list[str]:
    """All values of a header, as plain strings."""
    try:
        return [str(v) for v in message.get_all(name) or []]
    except Exception:
        return []


def part_text(part: Message, limit: int = MAX_TEXT_CHARS) -> str:
    """Decoded text of a leaf part (transfer encoding and charset undone, HTML tags stripped)."""
    try:
        payload = part.get_payload(decode=True)
    except Exception:
        payload = None
    if payload is None:
        raw = part.get_payload()
        if isinstance(raw, list):
            return ""
        return str(raw)[:limit]
    text = _decode_bytes(payload[: limit * 4], _charset(part))[:limit]
    if safe_content_type(part) == "text/html":
        text = _ENTITY.sub(_entity, _TAG.sub(" ", text))
    return text


def _undo_surrogates(value: str) -> str:
    """Raw 8-bit header bytes come back from the parser as surrogate escapes; most are UTF-8."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    return value


def _charset(part: Message) -> str | None:
    try:
        return part.get_content_charset()
    except Exception:
        return None


def _decode_bytes(data: bytes, charset: str | None) -> str:
    name = (charset or "utf-8").strip().strip('"').lower()
    try:
        codecs.lookup(name)
    except (LookupError, ValueError):
        name = "utf-8"
    try:
        return data.decode(name, errors="replace")
    except Exception:  # some codecs raise odd errors on hostile bytes even with errors="replace"
        return data.decode("latin-1")


def _entity(match: re.Match[str]) -> str:
    name = match.group(1)
    if name.startswith("#"):
        try:
            return chr(int(name[1:]))
        except (ValueError, OverflowError):
            return " "
    return _ENTITIES[name]
