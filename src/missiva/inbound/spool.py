"""The inbound spool: every accepted message is on disk before we answer 250.

A Maildir under the data directory (`inbound/`): atomic delivery into `new/`, processed messages move to
`cur/`. A crash after the 250 loses nothing; a crash before it makes the sending MTA retry. The envelope
recipients, which carry the VERP address, travel in an `X-Missiva-Rcpt` header we prepend.
"""

from __future__ import annotations

import mailbox
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from missiva.config import Settings

RCPT_HEADER = b"X-Missiva-Rcpt"


@dataclass(frozen=True)
class Spooled:
    """One message waiting to be processed."""

    key: str
    raw: bytes
    envelope_recipients: tuple[str, ...]


def spool_path(settings: Settings) -> Path:
    """Where the spool lives."""
    return settings.data_dir / "inbound"


def _box(settings: Settings) -> mailbox.Maildir:
    return mailbox.Maildir(spool_path(settings), factory=None, create=True)


def store(settings: Settings, raw: bytes, envelope_recipients: Sequence[str]) -> str:
    """Write a message durably into the spool; its key."""
    header = RCPT_HEADER + b": " + ", ".join(envelope_recipients).encode("ascii", "replace") + b"\r\n"
    box = _box(settings)
    try:
        return box.add(header + raw)
    finally:
        box.close()


def pending(settings: Settings) -> Iterator[Spooled]:
    """Messages not processed yet, oldest first."""
    box = _box(settings)
    new_dir = Path(box._path) / "new"
    entries = sorted(new_dir.iterdir(), key=lambda p: p.stat().st_mtime) if new_dir.exists() else []
    for path in entries:
        data = path.read_bytes()
        rcpts: tuple[str, ...] = ()
        if data.startswith(RCPT_HEADER + b": "):
            line, _, data = data.partition(b"\n")
            value = line[len(RCPT_HEADER) + 2 :].strip().decode("ascii", "replace")
            rcpts = tuple(r.strip() for r in value.split(",") if r.strip())
        yield Spooled(key=path.name.split(":")[0], raw=data, envelope_recipients=rcpts)


def done(settings: Settings, key: str) -> None:
    """Mark a message processed (moves it to `cur/`)."""
    box = _box(settings)
    try:
        msg = box.get_message(key)
        msg.set_subdir("cur")
        msg.add_flag("S")
        box[key] = msg
    finally:
        box.close()
