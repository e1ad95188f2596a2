"""Where a sync job's files live, as stored with the job, and how to connect to it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from missiva.sync.errors import TransportError
from missiva.sync.transports.base import Transport

Kind = Literal["local", "ftp", "ftps", "sftp"]
_DEFAULT_PORTS = {"ftp": 21, "ftps": 21, "sftp": 22}


@dataclass(frozen=True)
class TransportConfig:
    """Connection settings; secrets are left out of `repr` so they never reach a log line.

    `kind="ftp"` with `tls=True` is the same as `kind="ftps"` (explicit TLS on port 21). For
    `local`, `remote_dir` is the directory path. `private_key` is the key's text (OpenSSH or PEM),
    `known_host_key` one OpenSSH public key line the SFTP server must present, `ca_file` the
    certificate(s) an FTPS server's must chain to (a self-signed one can be given directly).
    """

    kind: Kind
    host: str = ""
    port: int | None = None
    username: str = ""
    password: str | None = field(default=None, repr=False)
    private_key: str | None = field(default=None, repr=False)
    private_key_passphrase: str | None = field(default=None, repr=False)
    remote_dir: str = ""
    tls: bool = False
    known_host_key: str | None = None
    ca_file: str | None = None
    verify_tls: bool = True
    timeout: float = 30.0


def open_transport(config: TransportConfig) -> Transport:
    """Connect (and log in) according to `config`; raises `TransportError` when that fails."""
    port = config.port or _DEFAULT_PORTS.get(config.kind, 0)
    if config.kind == "local":
        from missiva.sync.transports.local import LocalTransport

        return LocalTransport(config.remote_dir)
    if config.kind in {"ftp", "ftps"}:
        from missiva.sync.transports.ftp import FtpTransport

        return FtpTransport(
            host=config.host,
            port=port,
            username=config.username,
            password=config.password or "",
            remote_dir=config.remote_dir,
            tls=config.tls or config.kind == "ftps",
            ca_file=config.ca_file,
            verify_tls=config.verify_tls,
            timeout=config.timeout,
        )
    if config.kind == "sftp":
        from missiva.sync.transports.sftp import SftpTransport

        return SftpTransport(
            host=config.host,
            port=port,
            username=config.username,
            password=config.password,
            private_key=config.private_key,
            private_key_passphrase=config.private_key_passphrase,
            known_host_key=config.known_host_key,
            remote_dir=config.remote_dir,
            timeout=config.timeout,
        )
    raise TransportError(f"unknown transport kind {config.kind!r}")
