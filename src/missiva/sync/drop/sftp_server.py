"""Missiva's own SFTP drop (asyncssh): password logins checked by a callback, one chroot per account.

Only SFTP is offered: no shell, exec, port forwarding or links. An upload is reported when the
client closes the file it wrote (or renames a temporary name into place).
"""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path
from typing import Any

import asyncssh

from missiva.sync.background_loop import BackgroundLoop
from missiva.sync.drop.uploads import Authenticate, OnUpload, UploadNotifier, account_home

log = logging.getLogger(__name__)

_ACCOUNT_INFO = "missiva_account_key"
_WRITE_V3 = asyncssh.FXF_WRITE | asyncssh.FXF_APPEND
_WRITE_V5 = asyncssh.ACE4_WRITE_DATA | asyncssh.ACE4_APPEND_DATA


def load_or_create_host_key(path: Path) -> asyncssh.SSHKey:
    """The drop's Ed25519 host key, generated on first start so clients can pin it afterwards."""
    if path.exists():
        return asyncssh.read_private_key(str(path))
    key = asyncssh.generate_private_key("ssh-ed25519")
    path.parent.mkdir(parents=True, exist_ok=True)
    key.write_private_key(str(path))
    os.chmod(path, 0o600)
    return key


class _DropSSHServer(asyncssh.SSHServer):
    """Password authentication through Missiva's callback, run off the event loop (it may hit the DB)."""

    def __init__(self, authenticate: Authenticate) -> None:
        self._authenticate = authenticate
        self._conn: asyncssh.SSHServerConnection | None = None

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        self._conn = conn

    def begin_auth(self, username: str) -> bool:
        return True

    def password_auth_supported(self) -> bool:
        return True

    async def validate_password(self, username: str, password: str) -> bool:
        loop = asyncio.get_running_loop()
        try:
            account_key = await loop.run_in_executor(None, self._authenticate, username, password)
        except Exception:
            log.exception("SFTP drop: authentication callback failed for %r", username)
            return False
        if not account_key or self._conn is None:
            return False
        self._conn.set_extra_info(**{_ACCOUNT_INFO: account_key})
        return True


class _DropSFTPServer(asyncssh.SFTPServer):
    """Chrooted to the account's home; remembers files opened for writing to report them on close."""

    def __init__(self, chan: asyncssh.SSHServerChannel, data_dir: Path, notifier: UploadNotifier) -> None:
        self._account_key: str = chan.get_extra_info(_ACCOUNT_INFO)
        super().__init__(chan, chroot=os.fsencode(account_home(data_dir, self._account_key)))
        self._notifier = notifier
        self._writing: dict[object, bytes] = {}

    def _completed(self, local_path: bytes) -> None:
        self._notifier.file_completed(self._account_key, Path(os.fsdecode(local_path)))

    def open(self, path: bytes, pflags: int, attrs: asyncssh.SFTPAttrs) -> object:
        file_obj = super().open(path, pflags, attrs)
        if pflags & _WRITE_V3:
            self._writing[file_obj] = self.map_path(path)
        return file_obj

    def open56(self, path: bytes, desired_access: int, flags: int, attrs: asyncssh.SFTPAttrs) -> object:
        file_obj = super().open56(path, desired_access, flags, attrs)
        if desired_access & _WRITE_V5:
            self._writing[file_obj] = self.map_path(path)
        return file_obj

    def close(self, file_obj: object) -> None:
        super().close(file_obj)
        local_path = self._writing.pop(file_obj, None)
        if local_path is not None:
            self._completed(local_path)

    def rename(self, oldpath: bytes, newpath: bytes) -> None:
        super().rename(oldpath, newpath)
        self._completed(self.map_path(newpath))

    def posix_rename(self, oldpath: bytes, newpath: bytes) -> None:
        super().posix_rename(oldpath, newpath)
        self._completed(self.map_path(newpath))

    def symlink(self, oldpath: bytes, newpath: bytes) -> None:
        raise asyncssh.SFTPPermissionDenied("links are not allowed in the drop")

    def link(self, oldpath: bytes, newpath: bytes) -> None:
        raise asyncssh.SFTPPermissionDenied("links are not allowed in the drop")


class SftpDropServer:
    """An SFTP server for account drops; `start()` serves from its own event loop thread."""

    def __init__(
        self,
        *,
        data_dir: Path,
        authenticate: Authenticate,
        on_upload: OnUpload,
        host_key: asyncssh.SSHKey,
        host: str = "127.0.0.1",
        port: int = 0,
        login_timeout: float = 30.0,
    ) -> None:
        self.data_dir = data_dir
        self._authenticate = authenticate
        self._notifier = UploadNotifier(on_upload, "sftp-drop")
        self._host_key = host_key
        self._host = host
        self._port = port
        self._login_timeout = login_timeout
        self._loop: BackgroundLoop | None = None
        self._acceptor: asyncssh.SSHAcceptor | None = None

    def start(self) -> tuple[str, int]:
        """Listen and serve in a background thread; returns the bound (host, port)."""
        self._loop = BackgroundLoop("sftp-drop")
        self._acceptor = self._loop.run(self._listen())
        return self.address

    async def _listen(self) -> asyncssh.SSHAcceptor:
        def sftp_factory(chan: asyncssh.SSHServerChannel) -> Any:
            return _DropSFTPServer(chan, self.data_dir, self._notifier)

        return await asyncssh.listen(
            self._host,
            self._port,
            server_host_keys=[self._host_key],
            server_factory=lambda: _DropSSHServer(self._authenticate),
            sftp_factory=sftp_factory,
            allow_scp=False,
            agent_forwarding=False,
            x11_forwarding=False,
            login_timeout=self._login_timeout,
        )

    @property
    def address(self) -> tuple[str, int]:
        """(host, port) actually bound; useful with port 0."""
        if self._acceptor is None:
            raise RuntimeError("the SFTP drop is not started")
        return self._host, self._acceptor.get_port()

    def stop(self) -> None:
        """Close the listener and every session, then deliver pending notifications."""
        if self._loop is not None and self._acceptor is not None:
            acceptor, self._acceptor = self._acceptor, None

            async def shutdown() -> None:
                acceptor.close()
                await acceptor.wait_closed()

            self._loop.run(shutdown(), timeout=10)
            self._loop.stop()
        self._notifier.close()
