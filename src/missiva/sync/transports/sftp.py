"""SFTP with asyncssh, driven from synchronous code through a private event loop thread.

Sync jobs run in worker threads (Huey) or the CLI; a loop of our own works whether or not the
caller's thread already runs one. Host key pinning takes one OpenSSH public key line; without it
the server's key is not checked (as the brief's "pinning optional" allows), so set it in production.
"""

from __future__ import annotations

import asyncio
import contextlib
import posixpath
from collections.abc import Awaitable
from datetime import UTC, datetime
from typing import BinaryIO, TypeVar

import asyncssh

from missiva.sync.background_loop import BackgroundLoop
from missiva.sync.errors import TransportError
from missiva.sync.transports.base import (
    CHUNK,
    ClosingTransport,
    RemoteFile,
    listed,
    name_matcher,
    safe_folder,
    safe_name,
    temp_name,
    too_large,
)

T = TypeVar("T")
_ERRORS = (asyncssh.Error, OSError, asyncio.TimeoutError)


class SftpTransport(ClosingTransport):
    """One SFTP session (password or private key), working in `remote_dir`."""

    def __init__(
        self,
        *,
        host: str,
        username: str,
        port: int = 22,
        password: str | None = None,
        private_key: str | None = None,
        private_key_passphrase: str | None = None,
        known_host_key: str | None = None,
        remote_dir: str = "",
        timeout: float = 30.0,
    ) -> None:
        if not password and not private_key:
            raise TransportError("SFTP needs a password or a private key")
        self._label = f"sftp://{host}:{port}"
        self._timeout = timeout
        self._loop = BackgroundLoop(f"sftp {host}:{port}")
        self._conn: asyncssh.SSHClientConnection | None = None
        try:
            keys = [asyncssh.import_private_key(private_key, private_key_passphrase)] if private_key else []
            known = ([asyncssh.import_public_key(known_host_key)], [], []) if known_host_key else None
        except (asyncssh.KeyImportError, ValueError) as exc:
            self._loop.stop()
            raise TransportError(f"{self._label}: unusable key: {exc}") from None
        try:
            self._conn = self._run(
                "cannot connect",
                asyncssh.connect(
                    host,
                    port,
                    username=username,
                    password=password,
                    client_keys=keys,
                    known_hosts=known,
                    agent_path=None,  # only the credentials configured for this job
                    connect_timeout=timeout,
                ),
            )
            self._sftp = self._run("cannot start SFTP", self._conn.start_sftp_client())
            self._dir = self._run("cannot open the remote folder", self._sftp.realpath(remote_dir or "."))
        except TransportError:
            self.close()
            raise

    def _run(self, what: str, coro: Awaitable[T]) -> T:
        try:
            return self._loop.run(coro, self._timeout)
        except asyncssh.SFTPNoSuchFile:
            raise TransportError(f"{self._label}: {what}: no such file or folder") from None
        except asyncssh.SFTPError as exc:
            raise TransportError(f"{self._label}: {what}: {exc.reason}") from None
        except _ERRORS as exc:
            raise TransportError(f"{self._label}: {what}: {exc}") from None

    def _path(self, name: str) -> str:
        return posixpath.join(self._dir, safe_name(name))

    def list(self, pattern: str = "*") -> list[RemoteFile]:
        matches = name_matcher(pattern)
        entries = self._run("listing failed", self._sftp.readdir(self._dir))
        files = []
        for entry in entries:
            name = str(entry.filename)
            if entry.attrs.type != asyncssh.FILEXFER_TYPE_REGULAR or not listed(name, matches):
                continue
            mtime = datetime.fromtimestamp(entry.attrs.mtime, UTC) if entry.attrs.mtime is not None else None
            files.append(RemoteFile(name, entry.attrs.size, mtime))
        return sorted(files, key=lambda f: f.name)

    def download(self, name: str, dest: BinaryIO, max_bytes: int) -> int:
        path = self._path(name)
        what = f"cannot read {name!r}"
        remote = self._run(what, self._sftp.open(path, "rb"))
        try:
            size = self._run(what, remote.stat()).size
            if size is not None and size > max_bytes:
                raise too_large(name, max_bytes)
            total = 0
            while chunk := self._run(what, remote.read(CHUNK)):
                total += len(chunk)
                if total > max_bytes:
                    raise too_large(name, max_bytes)
                dest.write(chunk)
            return total
        finally:
            with contextlib.suppress(TransportError):
                self._run(what, remote.close())

    def upload(self, src: BinaryIO, name: str) -> None:
        target = self._path(name)
        temp = posixpath.join(self._dir, temp_name(name))
        what = f"cannot write {name!r}"
        remote = self._run(what, self._sftp.open(temp, "wb"))
        try:
            try:
                while chunk := src.read(CHUNK):
                    self._run(what, remote.write(chunk))
            finally:
                self._run(what, remote.close())
            self._replace(temp, target, what)
        except BaseException:
            with contextlib.suppress(TransportError):
                self._run(what, self._sftp.remove(temp))
            raise

    def _replace(self, old: str, new: str, what: str) -> None:
        """posix-rename (replaces the target) where the server offers it, else remove then rename."""
        try:
            self._loop.run(self._sftp.posix_rename(old, new), self._timeout)
            return
        except asyncssh.SFTPOpUnsupported:
            pass
        except asyncssh.SFTPError as exc:
            raise TransportError(f"{self._label}: {what}: {exc.reason}") from None
        except _ERRORS as exc:
            raise TransportError(f"{self._label}: {what}: {exc}") from None
        if self._run(what, self._sftp.exists(new)):
            self._run(what, self._sftp.remove(new))
        self._run(what, self._sftp.rename(old, new))

    def move(self, name: str, folder: str) -> None:
        source = self._path(name)
        directory = posixpath.join(self._dir, safe_folder(folder))
        what = f"cannot move {name!r} to {folder!r}"
        self._run(what, self._sftp.makedirs(directory, exist_ok=True))
        self._replace(source, posixpath.join(directory, name), what)

    def rename(self, name: str, new: str) -> None:
        self._replace(self._path(name), self._path(new), f"cannot rename {name!r} to {new!r}")

    def delete(self, name: str) -> None:
        self._run(f"cannot delete {name!r}", self._sftp.remove(self._path(name)))

    def close(self) -> None:
        if self._loop.closed:
            return
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()
            with contextlib.suppress(TransportError):
                self._run("closing", conn.wait_closed())
        self._loop.stop()
