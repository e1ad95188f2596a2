"""RFC 3464 delivery status notifications: the per-recipient fields of a message/delivery-status part."""

from __future__ import annotations

import re
from dataclasses import dataclass
from email.message import Message

from missiva.inbound import mime

MAX_RECIPIENTS = 100
DSN_TYPES = frozenset({"message/delivery-status", "message/global-delivery-status"})

_FIELD = re.compile(r"^([A-Za-z][A-Za-z0-9-]*)[ \t]*:[ \t]*(.*)$")
_ADDRESS = re.compile(
    r"[^\s<>\"(),;:@]+(?:\"[^\"]*\")?@[A-Za-z0-9.-]+\.[A-Za-z0-9-]+|\"[^\"]+\"@[A-Za-z0-9.-]+"
)


@dataclass(frozen=True, slots=True)
class RecipientReport:
    """What a DSN says about one recipient."""

    recipient: str | None
    action: str  # failed, delayed, delivered, relayed, expanded, or "" when missing
    status: str  # the Status field as written ("5.1.1", "5.0.0 (permanent failure)") or ""
    diagnostic: str  # Diagnostic-Code without its type ("smtp;"), unfolded


def reports(part: Message) -> list[RecipientReport]:
    """The per-recipient reports of a delivery-status part (the per-message block is skipped)."""
    result = []
    for fields in _blocks(part):
        if "final-recipient" not in fields and "original-recipient" not in fields:
            continue
        recipient = address(fields.get("original-recipient", "")) or address(
            fields.get("final-recipient", "")
        )
        diagnostic = fields.get("diagnostic-code", "")
        if ";" in diagnostic[:20]:
            diagnostic = diagnostic.split(";", 1)[1]
        result.append(
            RecipientReport(
                recipient=recipient,
                action=fields.get("action", "").split()[0].lower()
                if fields.get("action", "").split()
                else "",
                status=fields.get("status", ""),
                diagnostic=" ".join(diagnostic.split()),
            )
        )
        if len(result) >= MAX_RECIPIENTS:
            break
    return result


def address(value: str) -> str | None:
    """The email address in a recipient field such as ``rfc822; <Kijitora@Example.org>``, lowercased."""
    if ";" in value[:16]:
        value = value.split(";", 1)[1]
    match = _ADDRESS.search(value)
    if match is None:
        return None
    found = match.group(0).strip(".")
    if found.count("@") != 1 and not found.startswith('"'):
        return None
    return found.lower()


def _blocks(part: Message) -> list[dict[str, str]]:
    """Field blocks of the part, whether the parser split them into header blocks or left text."""
    payload = part.get_payload()
    blocks: list[dict[str, str]] = []
    if isinstance(payload, list):
        for block in payload[: MAX_RECIPIENTS + 1]:
            if isinstance(block, Message):
                fields = {}
                for name, value in block.items():
                    fields.setdefault(name.lower(), " ".join(str(value).split()))
                blocks.append(fields)
        # A delivery-status part that arrived base64-encoded is parsed as one empty block.
        if any(blocks):
            return blocks
    return _parse_text(mime.part_text(part, 64 * 1024))


def _parse_text(text: str) -> list[dict[str, str]]:
    blocks: list[dict[str, str]] = []
    current: dict[str, str] = {}
    last = ""
    for line in text.splitlines():
        if not line.strip():
            if current:
                blocks.append(current)
                current, last = {}, ""
            continue
        if line[0] in " \t" and last:
            current[last] += " " + line.strip()
            continue
        match = _FIELD.match(line)
        if match:
            last = match.group(1).lower()
            current.setdefault(last, match.group(2).strip())
    if current:
        blocks.append(current)
    return blocks[: MAX_RECIPIENTS + 1]
