"""Missiva's own FTP, FTPS and SFTP drops: logins per account, one notification per finished upload,
and no way out of the account's folder."""

from __future__ import annotations

import asyncio
import ftplib
import io
import queue
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncssh
import pytest
from sync_servers import TlsFiles

from missiva.sync.drop import FtpDropServer, SftpDropServer, is_partial_upload, load_or_create_host_key
from missiva.sync.errors import TransportError
from missiva.sync.transports import TransportConfig, open_transport

ACCOUNTS = {"shop1": ("pw-one", "acct-1"), "shop2": ("pw-two", "acct-2")}


def authenticate(username: str, password: str) -> str | None:
    expected = ACCOUNTS.get(username)
    return expected[1] if expected and expected[0] == password else None


@dataclass
class Drops:
    data_dir: Path
    uploads: queue.Queue[tuple[str, Path]]
    ftp_port: int
    ftps_port: int
    sftp_port: int
    host_key_line: str

    def next_upload(self) -> tuple[str, Path]:
        return self.uploads.get(timeout=10)

    def home(self, account: str) -> Path:
        return (self.data_dir / account).resolve()


@pytest.fixture(scope="module")
def drops(tmp_path_factory: pytest.TempPathFactory, tls_files: TlsFiles) -> Iterator[Drops]:
    data_dir = tmp_path_factory.mktemp("drops")
    uploads: queue.Queue[tuple[str, Path]] = queue.Queue()

    def on_upload(account: str, path: Path) -> None:
        uploads.put((account, path))

    common = {"data_dir": data_dir, "authenticate": authenticate, "on_upload": on_upload}
    ftp = FtpDropServer(**common, auth_failed_delay=0)
    ftps = FtpDropServer(**common, certfile=tls_files.cert, keyfile=tls_files.key, auth_failed_delay=0)
    host_key = load_or_create_host_key(data_dir / "keys" / "ssh_host_ed25519_key")
    sftp = SftpDropServer(**common, host_key=host_key)
    servers = [ftp, ftps, sftp]
    ports = [server.start()[1] for server in servers]
    yield Drops(data_dir, uploads, *ports, host_key.export_public_key().decode())
    for server in servers:
        server.stop()


@pytest.fixture(autouse=True)
def nothing_left_over(drops: Drops) -> Iterator[None]:
    yield
    assert drops.uploads.empty(), "a test left an unexpected upload notification behind"


def login_ftp(drops: Drops, user: str = "shop1") -> ftplib.FTP:
    ftp = ftplib.FTP()  # noqa: S321 - the drop serves plain FTP on purpose
    ftp.connect("127.0.0.1", drops.ftp_port, timeout=10)
    ftp.login(user, ACCOUNTS[user][0])
    return ftp


def transport_config(drops: Drops, kind: str, tls_files: TlsFiles, user: str = "shop1") -> TransportConfig:
    port = {"ftp": drops.ftp_port, "ftps": drops.ftps_port, "sftp": drops.sftp_port}[kind]
    return TransportConfig(
        kind=kind,  # type: ignore[arg-type]
        host="127.0.0.1",
        port=port,
        username=user,
        password=ACCOUNTS[user][0],
        ca_file=str(tls_files.cert),
        known_host_key=drops.host_key_line,
    )


def test_a_plain_ftp_upload_is_reported_once_with_its_account_and_path(drops: Drops) -> None:
    with login_ftp(drops) as ftp:
        ftp.storbinary("STOR first.csv", io.BytesIO(b"email\na@example.it\n"))
        ftp.storbinary("STOR second.csv", io.BytesIO(b"email\nb@example.it\n"))

    # Notifications arrive in order from one worker: a duplicate of the first would precede the second.
    assert drops.next_upload() == ("acct-1", drops.home("acct-1") / "first.csv")
    assert drops.next_upload() == ("acct-1", drops.home("acct-1") / "second.csv")
    assert (drops.home("acct-1") / "first.csv").read_bytes() == b"email\na@example.it\n"


@pytest.mark.parametrize("kind", ["ftp", "ftps", "sftp"])
def test_an_upload_under_a_temporary_name_is_reported_once_after_the_rename(
    drops: Drops, tls_files: TlsFiles, kind: str
) -> None:
    with open_transport(transport_config(drops, kind, tls_files, user="shop2")) as transport:
        transport.upload(io.BytesIO(b"email\nc@example.it\n"), f"nightly-{kind}.csv")
        transport.upload(io.BytesIO(b"email\nd@example.it\n"), f"after-{kind}.csv")

    home = drops.home("acct-2")
    assert drops.next_upload() == ("acct-2", home / f"nightly-{kind}.csv")
    assert drops.next_upload() == ("acct-2", home / f"after-{kind}.csv")


def test_an_sftp_put_is_reported_once_when_the_file_is_closed(drops: Drops) -> None:
    async def put() -> None:
        async with (
            asyncssh.connect(
                "127.0.0.1",
                drops.sftp_port,
                username="shop1",
                password="pw-one",
                known_hosts=None,
                client_keys=[],
            ) as conn,
            conn.start_sftp_client() as sftp,
        ):
            async with sftp.open("direct.csv", "wb") as remote:
                await remote.write(b"email\n")
                await remote.write(b"e@example.it\n")
            async with sftp.open("direct2.csv", "wb") as remote:
                await remote.write(b"email\nf@example.it\n")

    asyncio.run(put())
    assert drops.next_upload() == ("acct-1", drops.home("acct-1") / "direct.csv")
    assert drops.next_upload() == ("acct-1", drops.home("acct-1") / "direct2.csv")
    assert (drops.home("acct-1") / "direct.csv").read_bytes() == b"email\ne@example.it\n"


def test_an_aborted_ftp_upload_is_neither_reported_nor_kept(drops: Drops) -> None:
    with login_ftp(drops) as ftp:
        ftp.voidcmd("TYPE I")
        conn = ftp.transfercmd("STOR aborted.csv")
        conn.sendall(b"email\n" + b"x@example.it\n" * 1000)
        ftp.abort()  # returns once the server has answered 426: the transfer is over
        conn.close()
    with login_ftp(drops) as ftp:
        ftp.storbinary("STOR complete.csv", io.BytesIO(b"email\n"))

    assert drops.next_upload() == ("acct-1", drops.home("acct-1") / "complete.csv")
    assert not (drops.home("acct-1") / "aborted.csv").exists()


@pytest.mark.parametrize("kind", ["ftp", "ftps", "sftp"])
def test_wrong_passwords_and_unknown_users_are_refused(drops: Drops, tls_files: TlsFiles, kind: str) -> None:
    good = transport_config(drops, kind, tls_files)
    for username, password in [("shop1", "pw-two"), ("nobody", "pw-one")]:
        bad = TransportConfig(**{**good.__dict__, "username": username, "password": password})
        with pytest.raises(TransportError):
            open_transport(bad)


def test_ftps_drop_refuses_clear_text_logins(drops: Drops) -> None:
    ftp = ftplib.FTP()  # noqa: S321 - the drop serves plain FTP on purpose
    ftp.connect("127.0.0.1", drops.ftps_port, timeout=10)
    with pytest.raises(ftplib.error_perm, match="SSL/TLS required"):
        ftp.login("shop1", "pw-one")
    ftp.close()


def test_ftp_users_cannot_leave_their_home(drops: Drops) -> None:
    secret = drops.home("acct-2") / "secret.csv"
    secret.parent.mkdir(parents=True, exist_ok=True)  # another account's home, whichever test ran first
    secret.write_bytes(b"email\nsecret@example.it\n")
    with login_ftp(drops) as ftp:
        ftp.cwd("../..")
        assert ftp.pwd() == "/"
        with pytest.raises(ftplib.error_perm):
            ftp.cwd("/etc")
        with pytest.raises(ftplib.error_perm):
            ftp.retrbinary("RETR ../acct-2/secret.csv", lambda _: None)
        with pytest.raises(ftplib.error_perm):
            ftp.retrbinary("RETR /../../etc/passwd", lambda _: None)
        ftp.storbinary("STOR ../../escaped.csv", io.BytesIO(b"email\n"))
        assert "secret.csv" not in ftp.nlst("/")

    assert drops.next_upload() == ("acct-1", drops.home("acct-1") / "escaped.csv")
    assert not (drops.data_dir / "escaped.csv").exists()
    assert not (drops.data_dir.parent / "escaped.csv").exists()


def test_sftp_users_are_chrooted_to_their_home(drops: Drops) -> None:
    secret = drops.home("acct-2") / "secret.csv"
    secret.parent.mkdir(parents=True, exist_ok=True)  # another account's home, whichever test ran first
    secret.write_bytes(b"email\nsecret@example.it\n")

    async def explore() -> tuple[str, list[str]]:
        async with (
            asyncssh.connect(
                "127.0.0.1",
                drops.sftp_port,
                username="shop1",
                password="pw-one",
                known_hosts=None,
                client_keys=[],
            ) as conn,
            conn.start_sftp_client() as sftp,
        ):
            root = await sftp.realpath("/../..")
            for path in ["/../acct-2/secret.csv", "../../etc/passwd", "/etc/passwd"]:
                with pytest.raises(asyncssh.SFTPNoSuchFile):
                    await sftp.stat(path)
            with pytest.raises(asyncssh.SFTPPermissionDenied):
                await sftp.symlink("/etc/passwd", "passwd-link")
            async with sftp.open("/../../escaped-sftp.csv", "wb") as remote:
                await remote.write(b"email\n")
            return root, sorted(await sftp.listdir("/"))

    root, names = asyncio.run(explore())
    assert root == "/"
    assert "secret.csv" not in names and "escaped-sftp.csv" in names
    assert drops.next_upload() == ("acct-1", drops.home("acct-1") / "escaped-sftp.csv")
    assert not (drops.data_dir / "escaped-sftp.csv").exists()


def test_sftp_drop_offers_no_shell_or_commands(drops: Drops) -> None:
    async def run_command() -> None:
        async with asyncssh.connect(
            "127.0.0.1",
            drops.sftp_port,
            username="shop1",
            password="pw-one",
            known_hosts=None,
            client_keys=[],
        ) as conn:
            await conn.run("cat /etc/passwd", check=True)

    with pytest.raises((asyncssh.ChannelOpenError, asyncssh.ProcessError)):
        asyncio.run(run_command())


@pytest.mark.parametrize(
    ("name", "partial"),
    [
        ("list.csv", False),
        ("list.csv.filepart", True),
        ("list.csv.part", True),
        (".list.csv.4f2a.part", True),
        ("~list.csv", True),
        ("LIST.TMP", True),
        ("report.partial.csv", False),
    ],
)
def test_client_temporary_names_are_not_imports(name: str, partial: bool) -> None:
    assert is_partial_upload(name) is partial


def test_the_host_key_is_created_once_and_then_reused(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "host"
    first = load_or_create_host_key(path)
    again = load_or_create_host_key(path)
    assert first.export_public_key() == again.export_public_key()
    assert path.stat().st_mode & 0o777 == 0o600
