"""Missiva's own drop: per-account logins (passwords hashed) to the FTP/SFTP drop servers, and the
import that starts as soon as an upload completes.

Each login has its own folder under `<data dir>/drop/<username>` and its own import options; the drop
servers are started by `missiva serve` when MISSIVA_DROP_FTP_PORT and/or MISSIVA_DROP_SFTP_PORT are set.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from missiva.config import Settings
from missiva.db import Database
from missiva.errors import Conflict, InvalidInput, NotFound
from missiva.sync.drop import FtpDropServer, SftpDropServer, account_home, load_or_create_host_key
from missiva.sync.errors import UnsafeName
from missiva.sync.importer import ImportOptions, create_run
from missiva.sync.importer.runs import check_options
from missiva.sync.models import DropLogin
from missiva.sync.transports.base import safe_name
from missiva.tenancy.secrets import hash_password, verify_password

log = logging.getLogger(__name__)
# The username names the login's folder, so it must be a plain folder name (as `account_home` requires).
_USERNAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{2,63}")


def drop_root(settings: Settings) -> Path:
    """Where the drop servers keep the logins' folders."""
    return settings.data_dir / "drop"


def create_login(
    session: Session, account_id: int, username: str, password: str, options: ImportOptions
) -> DropLogin:
    """A drop login; uploads with it are imported with `options`. Conflict if the username is taken."""
    if not _USERNAME.fullmatch(username):
        raise InvalidInput(f"username {username!r} cannot be used as a folder name", field="username")
    if len(password) < 12:
        raise InvalidInput("the password must be at least 12 characters", field="password")
    check_options(session, account_id, options)
    if session.scalar(select(DropLogin.id).where(DropLogin.username == username)) is not None:
        raise Conflict(f"drop login {username!r} already exists", field="username")
    login = DropLogin(
        account_id=account_id,
        username=username,
        password_hash=hash_password(password),
        options=options.to_json(),
    )
    session.add(login)
    session.flush()
    return login


def list_logins(session: Session, account_id: int) -> list[DropLogin]:
    """The account's drop logins."""
    return list(
        session.scalars(select(DropLogin).where(DropLogin.account_id == account_id).order_by(DropLogin.id))
    )


def get_login(session: Session, account_id: int, username: str | None) -> DropLogin:
    """The account's login `username`, or its only one when None; NotFound otherwise."""
    logins = list_logins(session, account_id)
    if username is None and len(logins) == 1:
        return logins[0]
    for login in logins:
        if login.username == username:
            return login
    raise NotFound(
        f"drop login {username!r} does not exist" if username else "name the drop login", field="drop_login"
    )


def delete_login(session: Session, account_id: int, login_id: int) -> None:
    """Remove a login (its folder and files stay)."""
    login = session.get(DropLogin, login_id)
    if login is None or login.account_id != account_id:
        raise NotFound(f"drop login {login_id} does not exist", field="drop_login")
    session.delete(login)


def drop_file(settings: Settings, username: str, name: str) -> Path:
    """The path of `name` in the login's folder; InvalidInput for names leaving it or missing files."""
    try:
        safe_name(name)
    except UnsafeName as exc:
        raise InvalidInput(str(exc), field="drop_file") from None
    path = account_home(drop_root(settings), username) / name
    if not path.is_file():
        raise NotFound(f"no file {name!r} in the drop folder of {username!r}", field="drop_file")
    return path


@dataclass
class DropGateway:
    """The callbacks the drop servers call: check a login, and start an import for a finished upload."""

    db: Database
    enqueue: Callable[[int], object]

    def authenticate(self, username: str, password: str) -> str | None:
        """The login's folder key (its username) when the password matches, else None."""
        with self.db.session() as session:
            login = session.scalar(select(DropLogin).where(DropLogin.username == username))
            if login is None or not verify_password(password, login.password_hash):
                return None
            return login.username

    def on_upload(self, username: str, path: Path) -> int | None:
        """Queue the import of a completed upload; the run id (None if the login is gone)."""
        with self.db.session() as session:
            login = session.scalar(select(DropLogin).where(DropLogin.username == username))
            if login is None:
                return None
            options = ImportOptions.from_json(login.options)
            run = create_run(
                session,
                login.account_id,
                path,
                options,
                source="drop",
                source_ref=f"drop {username}: {path.name}"[:500],
            )
            run_id = run.id
        self.enqueue(run_id)
        return run_id


@dataclass
class DropServers:
    """The drop servers `missiva serve` started; `stop()` them on the way out."""

    servers: list[FtpDropServer | SftpDropServer] = field(default_factory=list)

    def stop(self) -> None:
        for server in self.servers:
            server.stop()


def start_from_environment(settings: Settings, db: Database, enqueue: Callable[[int], object]) -> DropServers:
    """Start the FTP and/or SFTP drop named by MISSIVA_DROP_FTP_PORT / MISSIVA_DROP_SFTP_PORT (off when
    unset). MISSIVA_DROP_HOST (default 127.0.0.1) is the address; MISSIVA_DROP_FTP_CERT and
    MISSIVA_DROP_FTP_KEY turn the FTP drop into FTPS (TLS required)."""
    gateway = DropGateway(db, enqueue)
    started = DropServers()
    host = os.environ.get("MISSIVA_DROP_HOST", "127.0.0.1")
    root = drop_root(settings)
    root.mkdir(parents=True, exist_ok=True)
    ftp_port = os.environ.get("MISSIVA_DROP_FTP_PORT")
    if ftp_port:
        cert = os.environ.get("MISSIVA_DROP_FTP_CERT")
        key = os.environ.get("MISSIVA_DROP_FTP_KEY")
        server = FtpDropServer(
            data_dir=root,
            authenticate=gateway.authenticate,
            on_upload=gateway.on_upload,
            host=host,
            port=int(ftp_port),
            certfile=Path(cert) if cert else None,
            keyfile=Path(key) if key else None,
        )
        log.info("FTP drop listening on %s:%s", *server.start())
        started.servers.append(server)
    sftp_port = os.environ.get("MISSIVA_DROP_SFTP_PORT")
    if sftp_port:
        sftp = SftpDropServer(
            data_dir=root,
            authenticate=gateway.authenticate,
            on_upload=gateway.on_upload,
            host_key=load_or_create_host_key(settings.data_dir / "drop_host_key"),
            host=host,
            port=int(sftp_port),
        )
        log.info("SFTP drop listening on %s:%s", *sftp.start())
        started.servers.append(sftp)
    return started
