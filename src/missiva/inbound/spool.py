"""The inbound spool: every accepted message is on disk before we answer 250.

A Maildir under the data directory (`inbound/`): atomic delivery into `new/`, processed messages move to
`cur/`, messages that made processing fail move to `failed/` so a sweep does not retry them forever. A
crash after the 250 loses nothing; a crash before it makes the sending MTA retry. The envelope
recipients, which carry the VERP address, travel in an `X-Missiva-Rcpt` header we prepend.
"""

from __future__ import annotations

import mailbox
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from missiva.config import Settings

RCPT_HEADER = b"X-Missiva-Rcpt"
SOURCE_HEADER = b"X-Missiva-Source"
_KEY = re.compile(r"^(?!\.\.?$)[^/\x00:]{1,255}$")  # a Maildir unique name: no separator, not . or ..


class SpoolKeyError(ValueError):
    """A spool key that cannot name a message of ours (path separators, empty, too long)."""


@dataclass(frozen=True)
class Spooled:
    """One message waiting to be processed."""

    key: str
    raw: bytes
    envelope_recipients: tuple[str, ...]
    source: str = "smtp"  # or "imap": how the message reached the spool


def spool_path(settings: Settings) -> Path:
    """Where the spool lives."""
    return settings.data_dir / "inbound"


def _box(settings: Settings) -> mailbox.Maildir:
    return mailbox.Maildir(spool_path(settings), factory=None, create=True)


def store(settings: Settings, raw: bytes, envelope_recipients: Sequence[str], *, source: str = "smtp") -> str:
    """Write a message durably into the spool; its key."""
    header = RCPT_HEADER + b": " + ", ".join(envelope_recipients).encode("ascii", "replace") + b"\r\n"
    if source != "smtp":
        header += SOURCE_HEADER + b": " + source.encode("ascii", "replace") + b"\r\n"
    box = _box(settings)
    try:
        return box.add(header + raw)
    finally:
        box.close()


def _read(path: Path) -> Spooled:
    data = path.read_bytes()
    rcpts: tuple[str, ...] = ()
    source = "smtp"
    if data.startswith(RCPT_HEADER + b": "):
        line, _, data = data.partition(b"\n")
        value = line[len(RCPT_HEADER) + 2 :].strip().decode("ascii", "replace")
        rcpts = tuple(r.strip() for r in value.split(",") if r.strip())
        if data.startswith(SOURCE_HEADER + b": "):
            line, _, data = data.partition(b"\n")
            source = line[len(SOURCE_HEADER) + 2 :].strip().decode("ascii", "replace")[:16]
    return Spooled(key=path.name.split(":")[0], raw=data, envelope_recipients=rcpts, source=source)


def _new_dir(settings: Settings) -> Path:
    return Path(_box(settings)._path) / "new"


def pending(settings: Settings) -> Iterator[Spooled]:
    """Messages not processed yet, oldest first (one read at a time)."""
    new_dir = _new_dir(settings)
    entries = []
    for path in new_dir.iterdir() if new_dir.exists() else ():
        try:
            entries.append((path.stat().st_mtime, path))
        except FileNotFoundError:
            continue  # taken by another processor meanwhile
    for _, path in sorted(entries):
        try:
            yield _read(path)
        except FileNotFoundError:
            continue


def load(settings: Settings, key: str) -> Spooled | None:
    """The pending message `key`, or None when it is processed already (or never was)."""
    if not _KEY.match(key or ""):
        raise SpoolKeyError(f"invalid spool key {key!r}")
    path = _new_dir(settings) / key
    try:
        return _read(path)
    except FileNotFoundError:
        return None


def _move(settings: Settings, key: str, subdir: str, suffix: str) -> bool:
    if not _KEY.match(key or ""):
        raise SpoolKeyError(f"invalid spool key {key!r}")
    root = spool_path(settings)
    target = root / subdir
    target.mkdir(exist_ok=True)
    try:
        os.rename(root / "new" / key, target / (key + suffix))
    except FileNotFoundError:
        return False  # someone else moved it first
    return True


def done(settings: Settings, key: str) -> bool:
    """Mark a message processed (moved to `cur/`, flagged seen); False if it was not pending."""
    return _move(settings, key, "cur", ":2,S")


def quarantine(settings: Settings, key: str) -> bool:
    """Set aside a message whose processing failed (moved to `failed/`) for an operator to look at."""
    return _move(settings, key, "failed", "")
