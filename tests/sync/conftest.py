"""Real servers for the sync tests, one of each per test session: FTP, FTPS (self-signed
certificate made here) and SFTP (asyncssh, host and client keys made here), all on 127.0.0.1."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import asyncssh
import pytest
from pyftpdlib.handlers import FTPHandler, TLS_FTPHandler
from sync_servers import (
    FAST_REFUSAL,
    PASSWORD,
    USER,
    ServerInfo,
    SftpInfo,
    ThreadedFtpd,
    TlsFiles,
    authorizer_for,
    make_self_signed,
)

from missiva.sync.background_loop import BackgroundLoop


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return make_self_signed(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="session")
def ftp_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerInfo]:
    root = tmp_path_factory.mktemp("ftp-root")
    handler = type("PlainHandler", (FTPHandler,), {"authorizer": authorizer_for(root), **FAST_REFUSAL})
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
            "authorizer": authorizer_for(root),
            **FAST_REFUSAL,
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
    handler = type(
        "LegacyHandler", (FTPHandler,), {"authorizer": authorizer_for(root), "proto_cmds": commands}
    )
    server = ThreadedFtpd(handler)
    yield ServerInfo(server.port, root)
    server.stop()
