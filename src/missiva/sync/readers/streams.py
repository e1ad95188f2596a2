"""Byte streams that replay a sniffed head and refuse to deliver more than a ceiling."""

from __future__ import annotations

import io
import os
import shutil
import tempfile
from typing import BinaryIO

from missiva.sync.errors import HostileInput

_SPOOL_IN_MEMORY = 8 * 1024 * 1024
_COPY_CHUNK = 256 * 1024


class GuardedStream(io.RawIOBase):
    """Reads `head` first, then `inner`; raises `HostileInput` once more than `max_bytes` went through.

    Counting what is actually read (not what a header or a stat claims) is what stops an upload that
    lies about its size or keeps growing while we read it.
    """

    def __init__(self, inner: BinaryIO, *, max_bytes: int, what: str, head: bytes = b"") -> None:
        super().__init__()
        self._inner = inner
        self._head = memoryview(head)
        self._max = max_bytes
        self._what = what
        self._count = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        view = memoryview(buffer).cast("B")
        if self._head:
            n = min(len(view), len(self._head))
            view[:n] = self._head[:n]
            self._head = self._head[n:]
        else:
            # Ask for one byte more than the budget so an oversize stream is caught, not truncated.
            want = min(len(view), self._max - self._count + 1)
            data = self._inner.read(want)
            n = len(data)
            view[:n] = data
        self._count += n
        if self._count > self._max:
            raise HostileInput(f"{self._what} is larger than the limit of {self._max} bytes")
        return n


def read_head(stream: BinaryIO, size: int) -> bytes:
    """Read up to `size` bytes, looping because pipes and archive members return short reads."""
    parts: list[bytes] = []
    remaining = size
    while remaining > 0:
        chunk = stream.read(remaining)
        if not chunk:
            break
        parts.append(chunk)
        remaining -= len(chunk)
    return b"".join(parts)


def remaining_size(stream: BinaryIO) -> int | None:
    """Bytes left from the current position of a seekable stream, else None (not knowable up front)."""
    try:
        if not stream.seekable():
            return None
        here = stream.tell()
        end = stream.seek(0, os.SEEK_END)
        stream.seek(here)
    except (OSError, ValueError):
        return None
    return end - here


def seekable_copy(stream: BinaryIO, *, head: bytes, max_bytes: int, what: str) -> BinaryIO:
    """A seekable stream with the same content; ZIP needs one because its directory is at the end.

    Small inputs stay in memory, larger ones spill to a temporary file; the copy is bounded.
    """
    spool = tempfile.SpooledTemporaryFile(max_size=_SPOOL_IN_MEMORY)  # noqa: SIM115 - returned to caller
    guarded = GuardedStream(stream, max_bytes=max_bytes, what=what, head=head)
    shutil.copyfileobj(guarded, spool, _COPY_CHUNK)
    spool.seek(0)
    return spool  # type: ignore[return-value]
