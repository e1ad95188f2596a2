"""The `missiva` command line and `missiva serve` as an operator runs them (real processes)."""

from __future__ import annotations

import json
import os
import smtplib
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

MISSIVA = [sys.executable, "-m", "missiva"]


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    e = {k: v for k, v in os.environ.items() if not k.startswith("MISSIVA_")}
    e.update({"MISSIVA_DATA_DIR": str(tmp_path / "var"), "MISSIVA_HUEY_IMMEDIATE": "1"})
    return e


def run(env, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*MISSIVA, *args], env=env, capture_output=True, text=True, timeout=60)


def test_account_apikey_lists_and_recipients_commands(env):
    assert run(env, "migrate").returncode == 0
    created = run(env, "account", "create", "ACME", "--host", "news.acme.test", "--json")
    assert created.returncode == 0, created.stderr
    acct = json.loads(created.stdout)
    assert acct["host"] == "news.acme.test" and acct["api_key"].startswith("msv_")
    assert acct["ws_username"] == f"a{acct['id']}"
    key = json.loads(run(env, "apikey", "create", "--account", str(acct["id"]), "--json").stdout)
    assert key["key"] != acct["api_key"]
    lst = json.loads(run(env, "lists", "create", "Weekly", "--opt-in", "single", "--json").stdout)
    shown = json.loads(run(env, "lists", "--json").stdout)
    assert [x["name"] for x in shown["lists"]] == ["Weekly"] and shown["lists"][0]["id"] == lst["id"]
    found = json.loads(run(env, "recipients", "find", "--email", "nobody@example.com", "--json").stdout)
    assert found == {"recipients": []}
    dup = run(env, "account", "create", "Other", "--host", "NEWS.acme.test")
    assert dup.returncode == 2 and "already belongs" in dup.stdout
    ips = run(env, "allowed-ips", "add", "10.0.0.0/8", "--account", str(acct["id"]), "--json")
    assert json.loads(ips.stdout)["network"] == "10.0.0.0/8"
    bad = run(env, "allowed-ips", "add", "not-an-ip", "--account", str(acct["id"]))
    assert bad.returncode == 2 and "not an IP" in bad.stdout


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_serve_bootstraps_a_demo_account_and_answers(env):
    port, smtp_port = _free_port(), _free_port()
    env = {**env, "MISSIVA_HUEY_IMMEDIATE": "0", "MISSIVA_INBOUND_PORT": str(smtp_port)}
    proc = subprocess.Popen(
        [*MISSIVA, "serve", "--bootstrap", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        demo = json.loads((Path(env["MISSIVA_DATA_DIR"]) / "demo.json").read_text())
        headers = {"Authorization": f"Bearer {demo['api_key']}"}
        lists = httpx.get(f"{base}/api/v1/lists", headers=headers).json()
        assert [x["name"] for x in lists] == ["Newsletter"]
        r = httpx.get(
            f"{base}/frontend/xmlSubscribe.aspx",
            params={"List": demo["list_id"], "Email": "live@example.com"},
        )
        assert r.text == "0\r\n"
        # The worker in the same process sends the confirmation into the Maildir outbox.
        outbox = Path(env["MISSIVA_DATA_DIR"]) / "outbox" / "new"
        for _ in range(100):
            if outbox.exists() and any(outbox.iterdir()):
                break
            time.sleep(0.1)
        [mail] = list(outbox.iterdir())
        assert f"{base}/c/" in mail.read_text()
        # The inbound SMTP receiver runs in the same process.
        with smtplib.SMTP("127.0.0.1", smtp_port, timeout=10) as smtp:
            assert smtp.ehlo()[0] == 250
            assert smtp.mail("a@example.com")[0] == 250
            assert smtp.rcpt("nobody@example.com")[0] == 550
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=20)
    assert demo["api_key"] in out and f"{base}/docs" in out
