"""Transports against real servers: the same behaviour from a local folder, FTP, FTPS and SFTP."""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sync_servers import PASSWORD, USER, ServerInfo, SftpInfo, TlsFiles

from missiva.sync.errors import HostileInput, TransportError, UnsafeName
from missiva.sync.transports import AfterImport, Disposal, Transport, TransportConfig, dispose, open_transport

KINDS = ["local", "ftp", "ftps", "sftp-password", "sftp-key", "ftp-legacy"]


def _config(kind: str, request: pytest.FixtureRequest, folder: str) -> tuple[TransportConfig, Path]:
    if kind == "local":
        root: Path = request.getfixturevalue("tmp_path") / "store"
        root.mkdir()
        return TransportConfig(kind="local", remote_dir=str(root)), root
    if kind.startswith("sftp"):
        sftp: SftpInfo = request.getfixturevalue("sftp_server")
        (sftp.root / folder).mkdir()
        secret = {"password": PASSWORD} if kind == "sftp-password" else {"private_key": sftp.client_key_text}
        config = TransportConfig(
            kind="sftp",
            host="127.0.0.1",
            port=sftp.port,
            username=USER,
            remote_dir=folder,
            known_host_key=sftp.host_key_line,
            **secret,
        )
        return config, sftp.root / folder
    fixture = {"ftp": "ftp_server", "ftps": "ftps_server", "ftp-legacy": "legacy_ftp_server"}[kind]
    server: ServerInfo = request.getfixturevalue(fixture)
    (server.root / folder).mkdir()
    tls: TlsFiles | None = request.getfixturevalue("tls_files") if kind == "ftps" else None
    config = TransportConfig(
        kind="ftps" if tls else "ftp",
        host="127.0.0.1",
        port=server.port,
        username=USER,
        password=PASSWORD,
        remote_dir=folder,
        ca_file=str(tls.cert) if tls else None,
    )
    return config, server.root / folder


@pytest.fixture(params=KINDS)
def store(request: pytest.FixtureRequest, fresh_folder: str) -> Iterator[tuple[Transport, Path]]:
    """An open transport and the local folder it is looking at."""
    config, folder = _config(request.param, request, fresh_folder)
    with open_transport(config) as transport:
        yield transport, folder


def test_uploaded_file_is_listed_and_downloads_identically(store: tuple[Transport, Path]) -> None:
    transport, folder = store
    content = os.urandom(300_000)
    transport.upload(io.BytesIO(content), "subscribers.csv")

    [listed] = transport.list("*.csv")
    assert listed.name == "subscribers.csv"
    assert listed.size in (len(content), None)  # the legacy server cannot tell sizes
    assert (folder / "subscribers.csv").read_bytes() == content
    if listed.mtime is not None:
        assert abs((datetime.now(UTC) - listed.mtime).total_seconds()) < 3600

    sink = io.BytesIO()
    assert transport.download("subscribers.csv", sink, max_bytes=len(content)) == len(content)
    assert sink.getvalue() == content


def test_upload_replaces_the_file_and_leaves_no_temporary_name(store: tuple[Transport, Path]) -> None:
    transport, folder = store
    transport.upload(io.BytesIO(b"old"), "data.csv")
    transport.upload(io.BytesIO(b"new content"), "data.csv")
    assert sorted(p.name for p in folder.iterdir()) == ["data.csv"]
    assert (folder / "data.csv").read_bytes() == b"new content"


def test_list_filters_by_glob_or_regex_and_skips_hidden_files_and_folders(
    store: tuple[Transport, Path],
) -> None:
    transport, folder = store
    for name in ["a.csv", "b.CSV", "c.xml", "export_2024.zip", ".hidden.csv"]:
        (folder / name).write_bytes(b"x")
    (folder / "archive.csv").mkdir()

    assert [f.name for f in transport.list("*.csv")] == ["a.csv"]
    assert [f.name for f in transport.list(r"re:(?i).*\.csv")] == ["a.csv", "b.CSV"]
    assert [f.name for f in transport.list(r"re:export_\d{4}\.zip")] == ["export_2024.zip"]
    assert [f.name for f in transport.list()] == ["a.csv", "b.CSV", "c.xml", "export_2024.zip"]


def test_download_over_the_size_limit_is_refused_and_the_session_stays_usable(
    store: tuple[Transport, Path],
) -> None:
    transport, folder = store
    (folder / "big.csv").write_bytes(b"e" * 2_000_000)
    (folder / "small.csv").write_bytes(b"email\n")
    sink = io.BytesIO()

    with pytest.raises(HostileInput, match=r"'big.csv' is larger than the limit of 100000 bytes"):
        transport.download("big.csv", sink, max_bytes=100_000)
    assert sink.tell() <= 100_000

    after = io.BytesIO()
    transport.download("small.csv", after, max_bytes=100)
    assert after.getvalue() == b"email\n"


def test_move_creates_the_folder_and_replaces_a_file_of_the_same_name(store: tuple[Transport, Path]) -> None:
    transport, folder = store
    (folder / "archive" / "2024").mkdir(parents=True)
    (folder / "archive" / "2024" / "list.csv").write_bytes(b"yesterday")
    (folder / "list.csv").write_bytes(b"today")

    transport.move("list.csv", "archive/2024")
    transport.upload(io.BytesIO(b"other"), "other.csv")
    transport.move("other.csv", "done")

    assert (folder / "archive" / "2024" / "list.csv").read_bytes() == b"today"
    assert (folder / "done" / "other.csv").read_bytes() == b"other"
    assert transport.list() == []


def test_rename_and_delete(store: tuple[Transport, Path]) -> None:
    transport, folder = store
    (folder / "in.csv").write_bytes(b"1")
    (folder / "taken.csv").write_bytes(b"2")

    transport.rename("in.csv", "taken.csv")
    assert (folder / "taken.csv").read_bytes() == b"1"
    transport.delete("taken.csv")
    assert list(folder.iterdir()) == []


def test_operations_on_a_missing_file_raise_transport_error(store: tuple[Transport, Path]) -> None:
    transport, _ = store
    with pytest.raises(TransportError, match=r"nothere\.csv"):
        transport.download("nothere.csv", io.BytesIO(), max_bytes=10)
    with pytest.raises(TransportError, match=r"nothere\.csv"):
        transport.delete("nothere.csv")
    with pytest.raises(TransportError, match=r"nothere\.csv"):
        transport.rename("nothere.csv", "x.csv")


@pytest.mark.parametrize("name", ["../escape.csv", "sub/file.csv", "..", "a\\b.csv", "", "/etc/passwd"])
def test_names_that_would_leave_the_folder_are_refused(store: tuple[Transport, Path], name: str) -> None:
    transport, folder = store
    (folder / "keep.csv").write_bytes(b"x")
    with pytest.raises(UnsafeName):
        transport.upload(io.BytesIO(b"evil"), name)
    with pytest.raises(UnsafeName):
        transport.download(name, io.BytesIO(), max_bytes=10)
    with pytest.raises(UnsafeName):
        transport.rename("keep.csv", name)
    with pytest.raises(UnsafeName):
        transport.move("keep.csv", "../outside")
    assert not (folder.parent / "escape.csv").exists()
    assert sorted(p.name for p in folder.iterdir()) == ["keep.csv"]


def test_processed_files_are_archived_renamed_or_deleted(store: tuple[Transport, Path]) -> None:
    transport, folder = store
    for name in ["a.csv", "b.csv", "c.csv"]:
        (folder / name).write_bytes(b"x")
    now = datetime(2025, 1, 31, 2, 0, tzinfo=UTC)

    archived = dispose(transport, "a.csv", Disposal(AfterImport.ARCHIVE, folder="archive"), now=now)
    renamed = dispose(
        transport, "b.csv", Disposal(AfterImport.RENAME, name_template="{stem}.done{suffix}"), now=now
    )
    deleted = dispose(transport, "c.csv", Disposal(AfterImport.DELETE), now=now)

    assert archived == "archive/20250131T020000-a.csv"
    assert (folder / "archive" / "20250131T020000-a.csv").exists()
    assert renamed == "b.done.csv" and (folder / "b.done.csv").exists()
    assert deleted is None and not (folder / "c.csv").exists()
    assert [f.name for f in transport.list("*.csv")] == ["b.done.csv"]


@pytest.mark.parametrize("kind", ["ftp", "ftps", "sftp"])
def test_wrong_password_is_a_transport_error(
    request: pytest.FixtureRequest, kind: str, tls_files: TlsFiles
) -> None:
    server: ServerInfo = request.getfixturevalue(f"{kind}_server")
    config = TransportConfig(
        kind=kind,  # type: ignore[arg-type]
        host="127.0.0.1",
        port=server.port,
        username=USER,
        password="wrong",
        ca_file=str(tls_files.cert),
        known_host_key=getattr(server, "host_key_line", None),
    )
    with pytest.raises(TransportError):
        open_transport(config)


def test_ftps_refuses_a_certificate_it_cannot_verify(ftps_server: ServerInfo) -> None:
    config = TransportConfig(
        kind="ftps", host="127.0.0.1", port=ftps_server.port, username=USER, password=PASSWORD
    )
    with pytest.raises(TransportError, match="certificate verify failed"):
        open_transport(config)


def test_sftp_refuses_a_host_key_other_than_the_pinned_one(sftp_server: SftpInfo) -> None:
    import asyncssh

    impostor = asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode()
    config = TransportConfig(
        kind="sftp",
        host="127.0.0.1",
        port=sftp_server.port,
        username=USER,
        password=PASSWORD,
        known_host_key=impostor,
    )
    with pytest.raises(TransportError, match="cannot connect"):
        open_transport(config)


def test_secrets_stay_out_of_the_config_repr() -> None:
    config = TransportConfig(kind="sftp", host="h", password="hunter2", private_key="-----BEGIN")
    assert "hunter2" not in repr(config) and "BEGIN" not in repr(config)
