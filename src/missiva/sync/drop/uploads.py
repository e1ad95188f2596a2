"""What both drop servers share: per-account home folders and the "an upload completed" signal."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

log = logging.getLogger(__name__)

Authenticate = Callable[[str, str], str | None]
"""(username, password) -> account key, or None to refuse. Called for every login."""

OnUpload = Callable[[str, Path], None]
"""(account key, absolute path of the completed file). Should enqueue work and return."""

_ACCOUNT_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
# Names clients give a file while it is still being written (WinSCP, FileZilla, rsync, browsers).
_PARTIAL_SUFFIXES = (".filepart", ".part", ".partial", ".tmp", ".crdownload", ".upload")


def account_home(data_dir: Path, account_key: str) -> Path:
    """The account's drop folder under `data_dir`, created on first use; the key must be a plain name."""
    if not _ACCOUNT_KEY.fullmatch(account_key) or ".." in account_key:
        raise ValueError(f"account key {account_key!r} cannot be used as a folder name")
    home = (data_dir / account_key).resolve()
    home.mkdir(parents=True, exist_ok=True)
    return home


def is_partial_upload(name: str) -> bool:
    """True for hidden files and client temporary names: they are renamed when complete."""
    lowered = name.casefold()
    return name.startswith((".", "~")) or lowered.endswith(_PARTIAL_SUFFIXES)


class UploadNotifier:
    """Calls `on_upload` for completed, importable files, one at a time, off the server's I/O thread.

    A slow or failing callback must not stall other transfers or kill the server: it runs on a
    single worker (so notifications keep their order) and its exceptions are logged.
    """

    def __init__(self, on_upload: OnUpload, name: str) -> None:
        self._on_upload = on_upload
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)

    def file_completed(self, account_key: str, path: Path) -> None:
        """Report `path` unless it is a temporary name or no longer a regular file."""
        if is_partial_upload(path.name) or not path.is_file() or path.is_symlink():
            return
        self._executor.submit(self._notify, account_key, path)

    def _notify(self, account_key: str, path: Path) -> None:
        try:
            self._on_upload(account_key, path)
        except Exception:
            log.exception("upload callback failed for account %s, file %s", account_key, path)

    def close(self) -> None:
        """Wait for pending notifications, then stop the worker."""
        self._executor.shutdown(wait=True)
