"""Fixtures for the events domain: a real HTTP receiver on 127.0.0.1 and a dispatcher with a test clock."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

import pytest

import missiva.jobs  # noqa: F401 - installs the outbox listener
from missiva.audience import lists as lists_svc
from missiva.db import utcnow
from missiva.events import outbox
from missiva.events.dispatcher import DispatchConfig, Dispatcher


@dataclass(frozen=True)
class Received:
    """One request as the receiver saw it."""

    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes

    @property
    def webhook_id(self) -> str:
        return self.headers.get("webhook-id", "")


class Receiver:
    """A customer's HTTP endpoint: records every request; can answer an error status, hang, or be down."""

    def __init__(self) -> None:
        self.requests: list[Received] = []
        self.status = 200
        self.hang_from: int | None = None  # requests from this (0-based) index on wait for `release`
        self.release = threading.Event()
        self._cond = threading.Condition()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _handle(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                parts = urlsplit(self.path)
                seen = Received(
                    self.command,
                    parts.path,
                    parts.query,
                    {k.lower(): v for k, v in self.headers.items()},
                    body,
                )
                with receiver._cond:
                    index = len(receiver.requests)
                    receiver.requests.append(seen)
                    receiver._cond.notify_all()
                if receiver.hang_from is not None and index >= receiver.hang_from:
                    receiver.release.wait(30)
                reply = b"1"
                self.send_response(receiver.status)
                self.send_header("content-length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            do_GET = do_POST = _handle

            def log_message(self, *args: Any) -> None:
                pass

        class Server(ThreadingHTTPServer):
            request_queue_size = 128  # the dispatcher opens dozens of connections at once

            def handle_error(self, request: Any, client_address: Any) -> None:
                pass  # a client killed mid-request (the crash test) is expected

        self._server = Server(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.02,), daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Go down: connections are refused until `start()` again (same port)."""
        self.release.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Received]:
        """Block until at least `count` requests arrived (a short polling wait, never a fixed sleep)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self.requests) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"expected {count} requests, got {len(self.requests)}")
                self._cond.wait(left)
            return list(self.requests)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver().start()
    yield r
    r.stop()


@pytest.fixture(autouse=True)
def manual_dispatch(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests drive the dispatcher themselves; the after-commit nudge is tested on its own."""
    monkeypatch.setattr(outbox, "_kickers", [])


class Clock:
    """A clock tests move by hand (starting now, so rows written with the real time are comparable)."""

    def __init__(self) -> None:
        self.now = utcnow()

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)

    def catch_up(self) -> None:
        """Jump to the real time (rows written since the clock was made are then due)."""
        self.now = max(self.now, utcnow())


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def make_dispatcher(db, settings) -> Callable[..., Dispatcher]:
    def make(clock: Callable[[], datetime] = utcnow, rng: Any = None, **config: Any) -> Dispatcher:
        config.setdefault("timeout", 2.0)
        config.setdefault("lease", timedelta(seconds=10))
        return Dispatcher(db, settings.secret_key, DispatchConfig(**config), clock=clock, rng=rng)

    return make


@pytest.fixture
def lst(db, account):
    with db.session() as s:
        return lists_svc.create_list(s, account["id"], "News", opt_in="single")


# The sending engine's fixtures (message outcome events come from real mailings): sink, https settings, shop.
from tests.delivery.conftest import _sink_server, sending, shop, sink  # noqa: E402, F401
