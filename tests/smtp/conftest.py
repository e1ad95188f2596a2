"""Real SMTP peers for the delivery tests: aiosmtpd servers (scriptable replies, STARTTLS, AUTH, implicit
TLS) in threads, and Postfix's smtp-sink as a separate process."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from tests.tls import make_self_signed

USER, PASSWORD = "mailer", "s3cret pass"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), 0.2):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    content: bytes
    authenticated: bool
    tls: bool
    at: float = field(default_factory=time.monotonic)  # when the message was committed


@dataclass
class ScriptedHandler:
    """Records what arrives; answers chosen recipients with chosen replies; can misbehave on DATA."""

    received: list[Received] = field(default_factory=list)
    rcpt_replies: dict[str, str] = field(default_factory=dict)
    sessions: int = 0
    close_after_data: bool = False
    abort_on_data: bool = False
    stall_on_data: float = 0.0
    pipelining: bool = True
    max_per_session: int = 0

    def reset(self) -> None:
        self.received.clear()
        self.rcpt_replies.clear()
        self.sessions = 0
        self.close_after_data = self.abort_on_data = False
        self.stall_on_data = 0.0
        self.pipelining = True
        self.max_per_session = 0

    async def handle_EHLO(
        self, server: SMTP, session: Session, envelope: Envelope, hostname: str, responses: list[str]
    ) -> list[str]:
        session.host_name = hostname
        self.sessions += 1
        if self.pipelining:
            return [responses[0], "250-PIPELINING", "250-ENHANCEDSTATUSCODES", *responses[1:]]
        return responses

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        done = getattr(session, "messages_done", 0)
        if self.max_per_session and done >= self.max_per_session:
            assert server.transport is not None
            asyncio.get_running_loop().call_soon(server.transport.close)
            return "421 4.3.2 Enough for this session, closing"
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 2.1.0 OK"

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        reply = self.rcpt_replies.get(address)
        if reply is not None:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        assert server.transport is not None
        if self.abort_on_data:
            server.transport.abort()
            return "250 never seen"
        if self.stall_on_data:
            await asyncio.sleep(self.stall_on_data)
        self.received.append(
            Received(
                mail_from=str(envelope.mail_from),
                rcpt_tos=list(envelope.rcpt_tos),
                content=bytes(envelope.original_content or b""),
                authenticated=bool(session.authenticated),
                tls=session.ssl is not None or server.transport.get_extra_info("ssl_object") is not None,
            )
        )
        session.messages_done = getattr(session, "messages_done", 0) + 1  # type: ignore[attr-defined]
        if self.close_after_data:
            asyncio.get_running_loop().call_later(0.02, server.transport.close)
        return "250 2.0.0 queued"


def _authenticator(
    server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: object
) -> AuthResult:
    ok = isinstance(data, LoginPassword) and (data.login, data.password) == (USER.encode(), PASSWORD.encode())
    return AuthResult(success=ok, handled=False)


@dataclass
class SmtpServer:
    port: int
    handler: ScriptedHandler

    def url(self, scheme: str = "smtp", credentials: str = "", query: str = "") -> str:
        return f"{scheme}://{credentials}127.0.0.1:{self.port}{query}"


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and localhost."""
    files = make_self_signed(tmp_path_factory.mktemp("tls"))
    return files.cert, files.key


@pytest.fixture(scope="session")
def client_tls(tls_files: tuple[Path, Path]) -> ssl.SSLContext:
    """What the client trusts: exactly the test certificate."""
    return ssl.create_default_context(cafile=str(tls_files[0]))


def _server_tls(tls_files: tuple[Path, Path]) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*map(str, tls_files))
    return context


def _start(handler: ScriptedHandler, **kwargs: object) -> tuple[Controller, SmtpServer]:
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port, **kwargs)
    controller.start()
    return controller, SmtpServer(port, handler)


@pytest.fixture(scope="session")
def _plain_server() -> Iterator[SmtpServer]:
    controller, server = _start(ScriptedHandler())
    yield server
    controller.stop()


@pytest.fixture
def smtp_server(_plain_server: SmtpServer) -> SmtpServer:
    """aiosmtpd advertising PIPELINING; per-test scripted replies."""
    _plain_server.handler.reset()
    return _plain_server


@pytest.fixture(scope="session")
def _starttls_server(tls_files: tuple[Path, Path]) -> Iterator[SmtpServer]:
    controller, server = _start(
        ScriptedHandler(),
        tls_context=_server_tls(tls_files),
        require_starttls=True,
        authenticator=_authenticator,
        auth_required=True,
        auth_require_tls=True,
    )
    yield server
    controller.stop()


@pytest.fixture
def starttls_server(_starttls_server: SmtpServer) -> SmtpServer:
    """aiosmtpd that demands STARTTLS, then AUTH (mailer / 's3cret pass')."""
    _starttls_server.handler.reset()
    return _starttls_server


@pytest.fixture(scope="session")
def _smtps_server(tls_files: tuple[Path, Path]) -> Iterator[SmtpServer]:
    controller, server = _start(
        ScriptedHandler(),
        ssl_context=_server_tls(tls_files),
        authenticator=_authenticator,
        auth_required=True,
        auth_require_tls=False,  # aiosmtpd only counts STARTTLS as TLS; this whole session is TLS
    )
    yield server
    controller.stop()


@pytest.fixture
def smtps_server(_smtps_server: SmtpServer) -> SmtpServer:
    """aiosmtpd behind implicit TLS (smtps), AUTH required."""
    _smtps_server.handler.reset()
    return _smtps_server


@dataclass
class Sink:
    port: int
    dump_dir: Path | None

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    def messages(self) -> list[bytes]:
        """Each dumped message without smtp-sink's own trace headers (LF line ends, as dumped)."""
        assert self.dump_dir is not None
        out = []
        for path in sorted(self.dump_dir.iterdir()):
            lines = path.read_bytes().split(b"\n")
            index = 0
            while lines[index].startswith((b"X-", b"Received:", b"\t")):
                index += 1
            out.append(b"\n".join(lines[index:]))
        return out


def _run_sink(*options: str) -> Iterator[Sink]:
    binary = shutil.which("smtp-sink") or "/usr/sbin/smtp-sink"
    if not os.path.exists(binary):
        pytest.fail("Postfix smtp-sink is not installed (Debian package postfix)")
    # smtp-sink drops to user nobody before writing, and pytest's tmp_path is private to root.
    dump_dir = Path(tempfile.mkdtemp(prefix="missiva-sink-"))
    dump_dir.chmod(0o777)
    port = free_port()
    process = subprocess.Popen(
        [binary, "-u", "nobody", *options, "-d", f"{dump_dir}/m.", f"127.0.0.1:{port}", "1000"],
        stdout=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port)
        yield Sink(port, dump_dir)
    finally:
        process.terminate()
        process.wait(5)
        shutil.rmtree(dump_dir, ignore_errors=True)


@pytest.fixture
def smtp_sink() -> Iterator[Sink]:
    """Postfix smtp-sink (PIPELINING, ENHANCEDSTATUSCODES) dumping each message to a file."""
    yield from _run_sink()


@pytest.fixture
def dying_sink() -> Iterator[Sink]:
    """smtp-sink that hangs up without replying once it has received a message's final dot."""
    yield from _run_sink("-q", ".")
