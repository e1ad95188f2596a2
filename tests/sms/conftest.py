"""Fixtures for the SMS transport tests: a real SMSC simulator process and a real HTTP gateway."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

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
