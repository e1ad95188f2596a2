"""Real servers for the sync tests, one of each per test session: FTP, FTPS (self-signed
certificate made here) and SFTP (asyncssh, host and client keys made here), all on 127.0.0.1."""

from __future__ import annotations

import datetime as dt
import ipaddress
import logging
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncssh
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from pyftpdlib.authorizers import DummyAuthorizer
from pyftpdlib.handlers import FTPHandler, TLS_FTPHandler
from pyftpdlib.ioloop import IOLoop
from pyftpdlib.servers import FTPServer

from missiva.sync.background_loop import BackgroundLoop

USER, PASSWORD = "alice", "secret"
logging.getLogger("pyftpdlib").setLevel(logging.WARNING)


@dataclass(frozen=True)
class TlsFiles:
    cert: Path
    key: Path


@dataclass(frozen=True)
class ServerInfo:
    """A running test server: where it listens and which local folder it serves."""

    port: int
    root: Path


@dataclass(frozen=True)
class SftpInfo(ServerInfo):
    host_key_line: str
    client_key_text: str


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    """A self-signed certificate for 127.0.0.1, usable as its own CA file by clients."""
    folder = tmp_path_factory.mktemp("tls")
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "missiva test")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    files = TlsFiles(folder / "cert.pem", folder / "key.pem")
    files.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    files.key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return files


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
_FAST_REFUSAL = {"auth_failed_timeout": 0}


def _authorizer(root: Path) -> DummyAuthorizer:
    authorizer = DummyAuthorizer()
    authorizer.add_user(USER, PASSWORD, str(root), perm="elradfmwMT")
    return authorizer


@pytest.fixture(scope="session")
def ftp_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerInfo]:
    root = tmp_path_factory.mktemp("ftp-root")
    handler = type("PlainHandler", (FTPHandler,), {"authorizer": _authorizer(root), **_FAST_REFUSAL})
    server = ThreadedFtpd(handler)
    yield ServerInfo(server.port, root)
    server.stop()


@pytest.fixture(scope="session")
def ftps_server(tmp_path_factory: pytest.TempPathFactory, tls_files: TlsFiles) -> Iterator[ServerInfo]:
    """Explicit TLS, required on both control and data connections (as a careful host would)."""
    root = tmp_path_factory.mktemp("ftps-root")
    handler = type(
        "TlsHandler",
        (TLS_FTPHandler,),
        {
            "authorizer": _authorizer(root),
            **_FAST_REFUSAL,
            "certfile": str(tls_files.cert),
            "keyfile": str(tls_files.key),
            "ssl_context": None,
            "tls_control_required": True,
            "tls_data_required": True,
        },
    )
    server = ThreadedFtpd(handler)
    yield ServerInfo(server.port, root)
    server.stop()


@pytest.fixture(scope="session")
def sftp_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SftpInfo]:
    """asyncssh SFTP chrooted to a temporary folder; accepts alice's password or alice's key."""
    root = tmp_path_factory.mktemp("sftp-root")
    host_key = asyncssh.generate_private_key("ssh-ed25519")
    client_key = asyncssh.generate_private_key("ssh-ed25519")
    client_public = client_key.export_public_key()

    class Server(asyncssh.SSHServer):
        def begin_auth(self, username: str) -> bool:
            return True

        def password_auth_supported(self) -> bool:
            return True

        def validate_password(self, username: str, password: str) -> bool:
            return (username, password) == (USER, PASSWORD)

        def public_key_auth_supported(self) -> bool:
            return True

        def validate_public_key(self, username: str, key: asyncssh.SSHKey) -> bool:
            return username == USER and key.export_public_key() == client_public

    class ChrootedSFTP(asyncssh.SFTPServer):
        def __init__(self, chan: asyncssh.SSHServerChannel) -> None:
            super().__init__(chan, chroot=bytes(root))

    loop = BackgroundLoop("test-sftp")
    acceptor = loop.run(
        asyncssh.listen(
            "127.0.0.1",
            0,
            server_host_keys=[host_key],
            server_factory=Server,
            sftp_factory=ChrootedSFTP,
        )
    )
    yield SftpInfo(
        port=acceptor.get_port(),
        root=root,
        host_key_line=host_key.export_public_key().decode(),
        client_key_text=client_key.export_private_key().decode(),
    )

    async def shutdown() -> None:
        acceptor.close()
        await acceptor.wait_closed()

    loop.run(shutdown(), timeout=10)
    loop.stop()


@pytest.fixture
def fresh_folder() -> str:
    """A folder name unique to this test, so tests sharing a session server never see each other."""
    return f"t-{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="session")
def legacy_ftp_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerInfo]:
    """An old-style server: no MLSD and no SIZE, so clients must list with NLST and count bytes."""
    root = tmp_path_factory.mktemp("legacy-ftp-root")
    commands = {k: v for k, v in FTPHandler.proto_cmds.items() if k not in {"MLSD", "MLST", "SIZE"}}
    handler = type("LegacyHandler", (FTPHandler,), {"authorizer": _authorizer(root), "proto_cmds": commands})
    server = ThreadedFtpd(handler)
    yield ServerInfo(server.port, root)
    server.stop()
