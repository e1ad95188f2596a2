"""What every file store offers the sync jobs, and the name rules they all enforce.

Names are single path components relative to the configured directory: a name with '/', '\\' or
'..' is refused before any command is sent, so a configured pattern or a hostile listing can never
make us read or write outside that directory.
"""

from __future__ import annotations

import fnmatch
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import BinaryIO, Protocol, Self, runtime_checkable

from missiva.sync.errors import HostileInput, TransportError, UnsafeName

CHUNK = 256 * 1024


@dataclass(frozen=True)
class RemoteFile:
    """A file in the store's directory; `mtime` is timezone-aware UTC when the server tells it."""

    name: str
    size: int | None
    mtime: datetime | None


@runtime_checkable
class Transport(Protocol):
    """A directory of files, local or remote. Every method raises `TransportError` on failure."""

    def list(self, pattern: str = "*") -> list[RemoteFile]:
        """Regular, non-hidden files whose name matches `pattern` (a glob, or a regex after 're:')."""
        ...

    def download(self, name: str, dest: BinaryIO, max_bytes: int) -> int:
        """Copy `name` into `dest`; refuse (HostileInput) beyond `max_bytes`. Returns bytes copied."""
        ...

    def upload(self, src: BinaryIO, name: str) -> None:
        """Store `src` as `name` atomically: write a hidden temporary name, then rename over `name`."""
        ...

    def move(self, name: str, folder: str) -> None:
        """Move `name` into `folder` (relative, created if missing), replacing a file of that name."""
        ...

    def rename(self, name: str, new: str) -> None:
        """Rename within the directory, replacing `new` if it exists."""
        ...

    def delete(self, name: str) -> None:
        """Remove `name`."""
        ...

    def close(self) -> None:
        """Disconnect; safe to call twice."""
        ...

    def __enter__(self) -> Self: ...

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None: ...


class ClosingTransport:
    """Context-manager plumbing shared by the concrete transports."""

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def safe_name(name: str) -> str:
    """Return `name` if it is one harmless path component, else raise `UnsafeName`."""
    if not name or name in {".", ".."}:
        raise UnsafeName(f"{name!r} is not a file name")
    if "/" in name or "\\" in name or ".." in name or "\x00" in name:
        raise UnsafeName(f"file name {name!r} is refused: it contains '/', '\\', '..' or NUL")
    return name


def safe_folder(folder: str) -> str:
    """A relative folder path ('archive' or 'archive/2024') whose every component is a safe name."""
    parts = folder.strip("/").split("/") if folder and not folder.startswith("/") else [folder]
    return "/".join(safe_name(part) for part in parts)


def name_matcher(pattern: str) -> Callable[[str], bool]:
    """Compile a listing filter: 're:<regex>' must match the whole name, anything else is a glob."""
    if pattern.startswith("re:"):
        try:
            regex = re.compile(pattern[3:])
        except re.error as exc:
            raise TransportError(f"invalid file name pattern {pattern!r}: {exc}") from None
        return lambda name: regex.fullmatch(name) is not None
    return lambda name: fnmatch.fnmatchcase(name, pattern)


def listed(name: str, matches: Callable[[str], bool]) -> bool:
    """Hidden names (ours: in-progress uploads) are never candidates for import."""
    return not name.startswith(".") and matches(name)


def temp_name(name: str) -> str:
    """The hidden name an upload is written under before it is renamed into place."""
    return f".{name}.{uuid.uuid4().hex[:12]}.part"


def too_large(name: str, max_bytes: int) -> HostileInput:
    """The refusal for a download over the size limit, same wording for every transport."""
    return HostileInput(f"{name!r} is larger than the limit of {max_bytes} bytes")


def copy_bounded(read: Callable[[int], bytes], dest: BinaryIO, *, name: str, max_bytes: int) -> int:
    """Copy chunks from `read` to `dest`, stopping with `too_large` one byte past `max_bytes`."""
    total = 0
    while chunk := read(CHUNK):
        total += len(chunk)
        if total > max_bytes:
            raise too_large(name, max_bytes)
        dest.write(chunk)
    return total
