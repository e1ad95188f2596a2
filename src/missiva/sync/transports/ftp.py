"""FTP and FTPS (explicit TLS, `AUTH TLS` then `PROT P`) with the standard library's ftplib, passive mode."""

from __future__ import annotations

import contextlib
import ftplib
import socket
import ssl
from datetime import UTC, datetime
from typing import Any, BinaryIO

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

_ERRORS = (*ftplib.all_errors, ssl.SSLError)


class _ResumingFtpTls(ftplib.FTP_TLS):
    """FTP_TLS whose data connections resume the control connection's TLS session.

    vsftpd (`require_ssl_reuse`), FileZilla Server and others refuse data connections that do not,
    and ftplib does not do it by itself.
    """

    def ntransfercmd(self, cmd: str, rest: int | str | None = None) -> tuple[socket.socket, int | None]:
        conn, size = ftplib.FTP.ntransfercmd(self, cmd, rest)  # noqa: S321 - wrapped in TLS below
        if self._prot_p:  # type: ignore[attr-defined]
            session = self.sock.session  # type: ignore[union-attr]
            conn = self.context.wrap_socket(conn, server_hostname=self.host, session=session)
        return conn, size


def _mlsd_time(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.strptime(value[:14], "%Y%m%d%H%M%S").replace(tzinfo=UTC)
    except ValueError:
        return None


class FtpTransport(ClosingTransport):
    """One FTP or FTPS login, working in `remote_dir`."""

    def __init__(
        self,
        *,
        host: str,
        username: str,
        password: str,
        port: int = 21,
        remote_dir: str = "",
        tls: bool = False,
        ca_file: str | None = None,
        verify_tls: bool = True,
        timeout: float = 30.0,
    ) -> None:
        self._label = f"{'ftps' if tls else 'ftp'}://{host}:{port}"
        ftp: ftplib.FTP
        if tls:
            context = ssl.create_default_context(cafile=ca_file)
            if not verify_tls:
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
            ftp = _ResumingFtpTls(context=context, timeout=timeout)
        else:
            # Plain FTP only because customers' servers still offer nothing else; FTPS/SFTP preferred.
            ftp = ftplib.FTP(timeout=timeout)  # noqa: S321
        self._ftp = ftp
        try:
            ftp.connect(host, port)
            ftp.login(username, password)  # FTP_TLS sends AUTH TLS first
            if isinstance(ftp, ftplib.FTP_TLS):
                ftp.prot_p()
            ftp.set_pasv(True)
            ftp.voidcmd("TYPE I")
            if remote_dir:
                ftp.cwd(remote_dir)
            self._home = ftp.pwd()
        except _ERRORS as exc:
            ftp.close()
            raise TransportError(f"{self._label}: cannot log in as {username!r}: {exc}") from None

    def _call(self, what: str, fn: Any, *args: Any) -> Any:
        try:
            return fn(*args)
        except _ERRORS as exc:
            raise TransportError(f"{self._label}: {what}: {exc}") from None

    def list(self, pattern: str = "*") -> list[RemoteFile]:
        matches = name_matcher(pattern)
        try:
            entries = list(self._ftp.mlsd(facts=["type", "size", "modify"]))
        except ftplib.error_perm:
            return self._list_without_mlsd(matches)
        except _ERRORS as exc:
            raise TransportError(f"{self._label}: listing failed: {exc}") from None
        files = [
            RemoteFile(name, int(facts["size"]) if "size" in facts else None, _mlsd_time(facts.get("modify")))
            for name, facts in entries
            if facts.get("type", "file") == "file" and listed(name, matches)
        ]
        return sorted(files, key=lambda f: f.name)

    def _list_without_mlsd(self, matches: Any) -> list[RemoteFile]:
        """Old servers: NLST for names, then SIZE and MDTM per matching file (directories fail SIZE)."""
        names = self._call("listing failed", self._ftp.nlst)
        self._binary()
        files = []
        for name in sorted({n.rsplit("/", 1)[-1] for n in names}):
            if not listed(name, matches):
                continue
            try:
                size = self._ftp.size(name)
            except ftplib.error_perm as exc:
                if str(exc).startswith("550") or self._is_folder(name):
                    continue
                size = None  # the server has no SIZE command
            try:
                mtime = _mlsd_time(self._ftp.voidcmd(f"MDTM {name}").split()[-1])
            except ftplib.error_perm:
                mtime = None
            files.append(RemoteFile(name, size, mtime))
        return files

    def _is_folder(self, name: str) -> bool:
        """Without MLSD or SIZE, changing into it is the only portable way to spot a folder."""
        try:
            self._ftp.cwd(name)
        except ftplib.error_perm:
            return False
        self._call("cannot return to the working folder", self._ftp.cwd, self._home)
        return True

    def _binary(self) -> None:
        """Listings switch the session to ASCII; SIZE and RETR need image (binary) mode."""
        self._call("cannot switch to binary mode", self._ftp.voidcmd, "TYPE I")

    def download(self, name: str, dest: BinaryIO, max_bytes: int) -> int:
        safe_name(name)
        self._binary()
        try:
            size = self._ftp.size(name)
        except ftplib.error_perm:
            size = None  # SIZE is optional; the byte count below still applies
        except _ERRORS as exc:
            raise TransportError(f"{self._label}: cannot read {name!r}: {exc}") from None
        if size is not None and size > max_bytes:
            raise too_large(name, max_bytes)
        conn = self._call(f"cannot read {name!r}", self._ftp.transfercmd, f"RETR {name}")
        total = 0
        try:
            with conn:
                while chunk := conn.recv(CHUNK):
                    total += len(chunk)
                    if total > max_bytes:
                        raise too_large(name, max_bytes)
                    dest.write(chunk)
                if isinstance(conn, ssl.SSLSocket):
                    conn.unwrap()
        except _ERRORS as exc:
            raise TransportError(f"{self._label}: reading {name!r} failed: {exc}") from None
        finally:
            # Read the transfer's final reply (226, or 426 when we hung up early) to stay in step.
            try:
                self._ftp.voidresp()
            except ftplib.error_temp:
                pass
            except _ERRORS as exc:
                raise TransportError(f"{self._label}: reading {name!r} failed: {exc}") from None
        return total

    def upload(self, src: BinaryIO, name: str) -> None:
        safe_name(name)
        temp = temp_name(name)
        self._call(f"cannot write {name!r}", self._ftp.storbinary, f"STOR {temp}", src, CHUNK)
        try:
            self._replace(temp, name)
        except TransportError:
            with contextlib.suppress(*_ERRORS):
                self._ftp.delete(temp)
            raise

    def _replace(self, old: str, new: str) -> None:
        """RNFR/RNTO; servers that refuse to overwrite (IIS) get the old target deleted first."""
        try:
            self._ftp.rename(old, new)
        except ftplib.error_perm as exc:
            # Only when both files exist is the refusal about overwriting; never delete otherwise.
            if not (self._exists(old) and self._exists(new)):
                raise TransportError(f"{self._label}: cannot rename {old!r} to {new!r}: {exc}") from None
            self._call(f"cannot replace {new!r}", self._ftp.delete, new)
            self._call(f"cannot rename {old!r} to {new!r}", self._ftp.rename, old, new)
        except _ERRORS as exc:
            raise TransportError(f"{self._label}: cannot rename {old!r} to {new!r}: {exc}") from None

    def _exists(self, path: str) -> bool:
        self._binary()
        try:
            self._ftp.size(path)
        except ftplib.error_perm:
            return False
        return True

    def move(self, name: str, folder: str) -> None:
        safe_name(name)
        folder = safe_folder(folder)
        path = ""
        for part in folder.split("/"):
            path = f"{path}/{part}" if path else part
            try:
                self._ftp.mkd(path)
            except ftplib.error_perm:
                pass  # already there; a real failure shows up in the rename below
            except _ERRORS as exc:
                raise TransportError(f"{self._label}: cannot create {path!r}: {exc}") from None
        self._replace(name, f"{folder}/{name}")

    def rename(self, name: str, new: str) -> None:
        self._replace(safe_name(name), safe_name(new))

    def delete(self, name: str) -> None:
        self._call(f"cannot delete {name!r}", self._ftp.delete, safe_name(name))

    def close(self) -> None:
        try:
            self._ftp.quit()
        except _ERRORS:
            pass
        finally:
            self._ftp.close()
