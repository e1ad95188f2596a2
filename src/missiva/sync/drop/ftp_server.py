"""Missiva's own FTP/FTPS drop: each account logs in to its own folder; a finished upload is reported.

Built on pyftpdlib. Each server gets its own handler class and I/O loop, so an FTP and an FTPS
drop (or several test servers) can run side by side in one process.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from pathlib import Path
from typing import Any

from pyftpdlib.authorizers import AuthenticationFailed
from pyftpdlib.handlers import FTPHandler, TLS_FTPHandler
from pyftpdlib.ioloop import IOLoop
from pyftpdlib.servers import FTPServer

from missiva.sync.drop.uploads import Authenticate, OnUpload, UploadNotifier, account_home

log = logging.getLogger(__name__)

# List, change dir, read, append, delete, rename, mkdir, write: everything but chmod and mtime.
_PERMISSIONS = "elradfmw"
_POLL_SECONDS = 0.05


class _CallbackAuthorizer:
    """pyftpdlib authorizer that asks Missiva's callback and homes each account in its own folder."""

    def __init__(self, authenticate: Authenticate, data_dir: Path) -> None:
        self._authenticate = authenticate
        self._data_dir = data_dir
        # pyftpdlib asks for the home right after validating, on the same thread: remember it.
        self._homes: dict[str, str] = {}

    def validate_authentication(self, username: str, password: str, handler: Any) -> None:
        try:
            account_key = self._authenticate(username, password)
        except Exception:
            log.exception("FTP drop: authentication callback failed for %r", username)
            account_key = None
        if not account_key:
            raise AuthenticationFailed("Authentication failed.")
        handler.account_key = account_key
        self._homes[username] = str(account_home(self._data_dir, account_key))

    def get_home_dir(self, username: str) -> str:
        return self._homes.pop(username)

    def has_perm(self, username: str, perm: str, path: str | None = None) -> bool:
        return perm in _PERMISSIONS

    def get_perms(self, username: str) -> str:
        return _PERMISSIONS

    def get_msg_login(self, username: str) -> str:
        return "Welcome to the Missiva drop."

    def get_msg_quit(self, username: str) -> str:
        return "Goodbye."

    def impersonate_user(self, username: str, password: str) -> None:
        """All accounts share the server's OS user; isolation comes from the home folder."""

    def terminate_impersonation(self, username: str) -> None:
        """Nothing to undo."""


class _DropHandlerMixin:
    """Turns pyftpdlib's transfer hooks into upload notifications."""

    account_key = ""
    notifier: UploadNotifier

    def on_file_received(self, file: str) -> None:
        self.notifier.file_completed(self.account_key, Path(file))

    def on_incomplete_file_received(self, file: str) -> None:
        # An aborted upload is never imported; leave no half file behind to be mistaken for one.
        with contextlib.suppress(OSError):
            os.remove(file)

    def ftp_RNTO(self, path: str) -> tuple[str, str] | None:
        # Clients that upload under a temporary name (WinSCP's .filepart) finish with a rename.
        renamed = super().ftp_RNTO(path)  # type: ignore[misc]
        if renamed:
            self.notifier.file_completed(self.account_key, Path(renamed[1]))
        return renamed


class FtpDropServer:
    """An FTP (or explicit-TLS FTPS) server for account drops; `start()` serves from a thread."""

    def __init__(
        self,
        *,
        data_dir: Path,
        authenticate: Authenticate,
        on_upload: OnUpload,
        host: str = "127.0.0.1",
        port: int = 0,
        certfile: Path | None = None,
        keyfile: Path | None = None,
        tls_required: bool = True,
        passive_ports: range | None = None,
        masquerade_address: str | None = None,
        auth_failed_delay: float = 3.0,
    ) -> None:
        """With `certfile` the server speaks FTPS, and by default refuses logins and data in clear.

        `auth_failed_delay` slows password guessing: each wrong password is answered that late.
        """
        self.data_dir = data_dir
        self._notifier = UploadNotifier(on_upload, "ftp-drop")
        attributes: dict[str, Any] = {
            "authorizer": _CallbackAuthorizer(authenticate, data_dir),
            "notifier": self._notifier,
            "banner": "Missiva drop ready.",
            "passive_ports": list(passive_ports) if passive_ports else None,
            "masquerade_address": masquerade_address,
            "auth_failed_timeout": auth_failed_delay,
        }
        base: type[FTPHandler] = FTPHandler
        if certfile is not None:
            base = TLS_FTPHandler
            attributes |= {
                "certfile": str(certfile),
                "keyfile": str(keyfile) if keyfile else None,
                "ssl_context": None,  # never share a cached context with another server
                "tls_control_required": tls_required,
                "tls_data_required": tls_required,
            }
        handler = type("MissivaDropHandler", (_DropHandlerMixin, base), attributes)
        self._server = FTPServer((host, port), handler, ioloop=IOLoop())
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def address(self) -> tuple[str, int]:
        """(host, port) actually bound; useful with port 0."""
        host, port = self._server.socket.getsockname()[:2]
        return host, port

    def start(self) -> tuple[str, int]:
        """Serve in a daemon thread; returns the bound address."""
        self._thread = threading.Thread(target=self._serve, name="ftp-drop", daemon=True)
        self._thread.start()
        return self.address

    def _serve(self) -> None:
        while not self._stopping.is_set():
            self._server.serve_forever(timeout=_POLL_SECONDS, blocking=False, handle_exit=False)
        self._server.close_all()

    def stop(self) -> None:
        """Disconnect everyone, stop serving, then deliver pending notifications."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join()
        else:
            self._server.close_all()
        self._notifier.close()
