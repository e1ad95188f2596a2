"""Servers and credentials shared by the sync tests (a plain module: test files import it by name)."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path

from pyftpdlib.authorizers import DummyAuthorizer
from pyftpdlib.handlers import FTPHandler
from pyftpdlib.ioloop import IOLoop
from pyftpdlib.servers import FTPServer
from tests.tls import TlsFiles, make_self_signed  # noqa: F401 - re-exported for the sync tests

USER, PASSWORD = "alice", "secret"
logging.getLogger("pyftpdlib").setLevel(logging.WARNING)


@dataclass(frozen=True)
class ServerInfo:
    """A running test server: where it listens and which local folder it serves."""

    port: int
    root: Path


@dataclass(frozen=True)
class SftpInfo(ServerInfo):
    host_key_line: str
    client_key_text: str


class ThreadedFtpd:
    """A pyftpdlib server with its own I/O loop, polled from a daemon thread until stopped."""

    def __init__(self, handler: type[FTPHandler]) -> None:
        self._server = FTPServer(("127.0.0.1", 0), handler, ioloop=IOLoop())
        self.port: int = self._server.socket.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._server.serve_forever(timeout=0.05, blocking=False, handle_exit=False)
        self._server.close_all()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


# pyftpdlib waits 3 s before answering a wrong password; tests need not.
FAST_REFUSAL = {"auth_failed_timeout": 0}


def authorizer_for(root: Path) -> DummyAuthorizer:
    authorizer = DummyAuthorizer()
    authorizer.add_user(USER, PASSWORD, str(root), perm="elradfmwMT")
    return authorizer
