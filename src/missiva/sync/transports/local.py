"""A directory on this machine, for files dropped by another process or mounted shares."""

from __future__ import annotations

import os
import shutil
import stat
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from missiva.sync.errors import TransportError
from missiva.sync.transports.base import (
    CHUNK,
    ClosingTransport,
    RemoteFile,
    copy_bounded,
    listed,
    name_matcher,
    safe_folder,
    safe_name,
    temp_name,
    too_large,
)


class LocalTransport(ClosingTransport):
    """Files in one local directory; symbolic links are ignored so nothing outside is reachable."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise TransportError(f"local directory {str(self.root)!r} does not exist")

    def _path(self, name: str) -> Path:
        return self.root / safe_name(name)

    def list(self, pattern: str = "*") -> list[RemoteFile]:
        matches = name_matcher(pattern)
        files = []
        with os.scandir(self.root) as entries:
            for entry in entries:
                if not listed(entry.name, matches) or not entry.is_file(follow_symlinks=False):
                    continue
                info = entry.stat(follow_symlinks=False)
                files.append(RemoteFile(entry.name, info.st_size, datetime.fromtimestamp(info.st_mtime, UTC)))
        return sorted(files, key=lambda f: f.name)

    def download(self, name: str, dest: BinaryIO, max_bytes: int) -> int:
        path = self._path(name)
        try:
            # O_NOFOLLOW: a link swapped in after listing must not be followed out of the directory.
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        except OSError as exc:
            raise TransportError(f"cannot read {name!r}: {exc.strerror}") from None
        with os.fdopen(fd, "rb") as src:
            info = os.fstat(src.fileno())
            if not stat.S_ISREG(info.st_mode):
                raise TransportError(f"{name!r} is not a regular file")
            if info.st_size > max_bytes:
                raise too_large(name, max_bytes)
            return copy_bounded(src.read, dest, name=name, max_bytes=max_bytes)

    def upload(self, src: BinaryIO, name: str) -> None:
        target = self._path(name)
        temp = self.root / temp_name(name)
        try:
            with temp.open("xb") as out:
                shutil.copyfileobj(src, out, CHUNK)
                out.flush()
                os.fsync(out.fileno())
            os.replace(temp, target)
        except OSError as exc:
            temp.unlink(missing_ok=True)
            raise TransportError(f"cannot write {name!r}: {exc.strerror}") from None

    def move(self, name: str, folder: str) -> None:
        source = self._path(name)
        directory = self.root / safe_folder(folder)
        try:
            directory.mkdir(parents=True, exist_ok=True)
            os.replace(source, directory / source.name)
        except OSError as exc:
            raise TransportError(f"cannot move {name!r} to {folder!r}: {exc.strerror}") from None

    def rename(self, name: str, new: str) -> None:
        try:
            os.replace(self._path(name), self._path(new))
        except OSError as exc:
            raise TransportError(f"cannot rename {name!r} to {new!r}: {exc.strerror}") from None

    def delete(self, name: str) -> None:
        try:
            self._path(name).unlink()
        except OSError as exc:
            raise TransportError(f"cannot delete {name!r}: {exc.strerror}") from None

    def close(self) -> None:
        """Nothing to release."""
