"""Fixtures for the SMS transport tests: a real SMSC simulator process and a real HTTP gateway."""

from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest

PEER_SCRIPT = Path(__file__).with_name("smpp_peer.py")
SRC = Path(__file__).resolve().parents[2] / "src"


class PeerProcess:
    """The SMSC simulator (tests/sms/smpp_peer.py) running as a child process on 127.0.0.1."""

    def __init__(self, state_file: Path, *extra: str) -> None:
        self.state_file = state_file
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(filter(None, [str(SRC), os.environ.get("PYTHONPATH")])),
        }
        self.process = subprocess.Popen(
            [sys.executable, str(PEER_SCRIPT), "--port", "0", "--state-file", str(state_file), *extra],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line.strip().isdigit():
            self.stop()
            raise RuntimeError(f"SMPP peer did not start: {line!r}")
        self.port = int(line)

    def command(self, line: str) -> None:
        """Send a stdin command (``mo ...``, ``drop``) and wait until the peer has carried it out."""
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()
        assert self.process.stdout.readline().strip() == "ok"

    def records(self, kind: str = "message") -> list[dict[str, object]]:
        """Entries of the peer's JSONL state file of one type."""
        if not self.state_file.exists():
            return []
        entries = [json.loads(line) for line in self.state_file.read_text(encoding="utf-8").splitlines()]
        return [entry for entry in entries if entry["type"] == kind]

    def stop(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def smpp_peer(tmp_path: Path) -> Iterator[PeerProcess]:
    """A fresh SMSC simulator for one test (its records start empty)."""
    peer = PeerProcess(tmp_path / "peer.jsonl", "--password", "secret")
    yield peer
    peer.stop()


@pytest.fixture
def dropping_peer(tmp_path: Path) -> Iterator[PeerProcess]:
    """An SMSC simulator that aborts the connection on the 37th submit_sm, unanswered."""
    peer = PeerProcess(tmp_path / "peer.jsonl", "--drop-after", "37")
    yield peer
    peer.stop()


class GatewayHandler(BaseHTTPRequestHandler):
    """A toy SMS aggregator API; what it answers depends on the path (see ``do_GET``)."""

    server: GatewayServer

    def log_message(self, format: str, *args: object) -> None:  # keep test output quiet
        return

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def _handle(self) -> None:
        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode() if length else ""
        self.server.requests.append(
            {
                "method": self.command,
                "path": url.path,
                "query": dict(parse_qsl(url.query)),
                "headers": {k.lower(): v for k, v in self.headers.items()},
                "body": body,
            }
        )
        self.server.count += 1
        n = self.server.count
        auth = self.headers.get("Authorization", "")
        if url.path == "/api/send":  # JSON in, JSON out, bearer token
            if auth != "Bearer tok-123":
                return self._reply(401, "application/json", '{"error": "bad token"}')
            return self._reply(201, "application/json", json.dumps({"messages": [{"id": f"gw-{n}"}]}))
        if url.path == "/send.php":  # query string in, text out, basic auth
            if auth != "Basic " + base64.b64encode(b"acme:pw").decode():
                return self._reply(401, "text/plain", "ERR auth")
            return self._reply(200, "text/plain", f"OK id=txt-{n}")
        if url.path == "/form":  # form in, JSON out, API key header
            if self.headers.get("X-Api-Key") != "k-1":
                return self._reply(403, "text/plain", "forbidden")
            return self._reply(200, "application/json", json.dumps({"data": {"id": f"f-{n}"}}))
        if url.path == "/busy":
            return self._reply(503, "text/plain", "try later")
        if url.path == "/bad":
            return self._reply(400, "text/plain", "invalid destination")
        if url.path == "/noid":
            return self._reply(200, "application/json", "{}")
        if url.path == "/slow":
            time.sleep(0.5)
            return self._reply(200, "application/json", '{"id": "late"}')
        return self._reply(404, "text/plain", "no such route")

    def _reply(self, status: int, content_type: str, text: str) -> None:
        data = text.encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class GatewayServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), GatewayHandler)
        self.requests: list[dict[str, object]] = []
        self.count = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


@pytest.fixture
def http_gateway_server() -> Iterator[GatewayServer]:
    """A real HTTP server on 127.0.0.1 playing an SMS aggregator, in a thread."""
    server = GatewayServer()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


@pytest.fixture
def closed_port() -> int:
    """A port on 127.0.0.1 with nothing listening: connections are refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# -- SMS mailings: an account with a list, mobile subscribers, and the peer as its SMPP transport -------


@pytest.fixture
def sms_shop(db, settings, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """An account (default country IT) with a single opt-in list whose SMS sender id is "Shop".

    Sender runs keep their binds open up to 5 s for delivery receipts, small chunks.
    """
    from missiva.audience import lists
    from missiva.delivery.sms import settings as sms_settings
    from tests.conftest import make_account

    monkeypatch.setenv("MISSIVA_SMS_RECEIPT_WAIT", "5")
    monkeypatch.setenv("MISSIVA_SEND_CHUNK", "20")
    acct = make_account(db, "SMS Shop", default_country="IT")
    with db.session() as session:
        lists.ensure_default_fields(session, acct["id"])
        lst = lists.create_list(session, acct["id"], "Promo", opt_in="single")
        sms_settings.update_list(
            session, acct["id"], lst.id, {"sender_id": "Shop", "opt_out_text": "STOP al 4321"}
        )
        acct["list_id"] = lst.id
    return acct


def add_smpp_transport(client, shop: dict[str, Any], peer: PeerProcess, **overrides: Any) -> dict[str, Any]:
    """Configure the peer as the account's SMPP transport through the API."""
    values = {
        "host": "127.0.0.1",
        "port": peer.port,
        "system_id": "missiva",
        "window": 8,
        "reconnect_min": 0.05,
        "response_timeout": 3.0,
        **overrides,
    }
    response = client.post(
        "/api/v1/sms/transports",
        headers=shop["headers"],
        json={"name": "peer", "kind": "smpp", "settings": values, "secrets": {"password": "secret"}},
    )
    assert response.status_code == 201, response.text
    return response.json()


def subscribe_mobiles(db, shop: dict[str, Any], numbers: list[str], **fields: str) -> None:
    """Subscribe numbers to the shop's list on the SMS channel (single opt-in)."""
    from missiva.audience import subscriptions

    with db.session() as session:
        for number in numbers:
            subscriptions.subscribe(
                session,
                shop["id"],
                shop["list_id"],
                mobile=number,
                channel="sms",
                double_opt_in=False,
                fields=fields or None,
            )


def sms_message(client, shop: dict[str, Any], text: str, **extra: Any) -> dict[str, Any]:
    """Create an SMS message on the shop's list through the API."""
    response = client.post(
        f"/api/v1/lists/{shop['list_id']}/messages",
        headers=shop["headers"],
        json={"channel": "sms", "text": text, **extra},
    )
    assert response.status_code == 201, response.text
    return response.json()
