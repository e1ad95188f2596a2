"""`missiva send`, `messages`, `mailings` and `suppressions` as an operator runs them (real processes)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

SRC = str(Path(__file__).resolve().parents[2] / "src")


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "missiva", *args], env=env, capture_output=True, text=True, timeout=60
    )


def test_send_a_message_from_the_command_line_into_the_sink(tmp_path: Path, sink) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MISSIVA_")}
    env.update(
        {
            "PYTHONPATH": SRC,
            "MISSIVA_DATA_DIR": str(tmp_path / "var"),
            "MISSIVA_HUEY_IMMEDIATE": "1",
            "MISSIVA_BASE_URL": "https://news.example.com",
            "MISSIVA_SMTP_URL": sink.url(),
        }
    )
    assert run(env, "migrate").returncode == 0
    assert run(env, "account", "create", "ACME").returncode == 0
    lst = json.loads(run(env, "lists", "create", "Weekly", "--opt-in", "single", "--json").stdout)
    html = tmp_path / "news.html"
    html.write_text("<p>Hello [email]</p>")
    created = run(
        env,
        "messages",
        "create",
        str(lst["id"]),
        "--subject",
        "News",
        "--html",
        str(html),
        "--from",
        "n@acme.test",
    )
    assert created.returncode == 0, created.stderr
    bad = tmp_path / "bad.html"
    bad.write_text("<p>\n[nosuchfield]</p>")
    refused = run(
        env,
        "messages",
        "create",
        str(lst["id"]),
        "--subject",
        "x",
        "--html",
        str(bad),
        "--from",
        "n@acme.test",
    )
    assert refused.returncode == 2 and "line 2" in refused.stdout and "nosuchfield" in refused.stdout
    emails = tmp_path / "dnm.csv"
    emails.write_text("email\nblocked@example.org\n")
    assert "1 added" in run(env, "suppressions", "import", str(emails)).stdout

    sent = run(env, "send", "1")

    assert sent.returncode == 0, sent.stderr
    assert "finished" in sent.stdout
    shown = json.loads(run(env, "mailings", "show", "1").stdout)
    assert shown["status"] == "finished" and shown["audience"] == 0
    assert "blocked@example.org,import" in run(env, "suppressions", "export").stdout
