"""`missiva import` as an operator runs it (a real process): JSON report, and a kill -9 mid-file."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from import_helpers import audience_state, import_file, make_list
from sqlalchemy import select
from tests.conftest import make_account

from missiva.sync.models import ImportRun

MISSIVA = [sys.executable, "-m", "missiva"]


def cli_env(settings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MISSIVA_")}
    env.update(
        {
            "MISSIVA_DATA_DIR": str(settings.data_dir),
            "MISSIVA_DATABASE_URL": settings.database_url,
            "MISSIVA_SECRET_KEY": settings.secret_key,
            "MISSIVA_HUEY_IMMEDIATE": "1",
            "PYTHONPATH": os.pathsep.join(sys.path),
        }
    )
    return env


def big_file(path: Path, rows: int) -> Path:
    with path.open("w", encoding="utf-8") as fh:
        fh.write("email;nome;cognome\n")
        for i in range(rows):
            fh.write(f"user{i}@example.it;Name{i};Surname{i % 97}\n")
            if i % 1000 == 0:
                fh.write(f"broken-{i};x;y\n")
    return path


def test_json_output_carries_counters_and_every_row_error(settings, db, account, tmp_path):
    lst = make_list(db, account["id"])
    path = tmp_path / "small.csv"
    path.write_text("email;nome\na@example.it;Anna\nnope;Bad\na@example.it;Anna Due\n")
    done = subprocess.run(
        [*MISSIVA, "import", str(path), "--list", str(lst["id"]), "--account", str(account["id"]), "--json"],
        env=cli_env(settings),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["status"] == "completed"
    assert report["counters"] == {
        "total": 3,
        "new": 1,
        "updated": 0,
        "unchanged": 0,
        "unsubscribed": 0,
        "skipped": 1,
        "errors": 1,
    }
    assert report["errors"] == [
        {
            "row": 3,
            "entry": None,
            "column": "email",
            "reason": "invalid email 'nope': An email address must have an @-sign.",
        }
    ]


def read_checkpoint(db) -> int:
    """The run's checkpoint, read outside any write transaction.

    A session would begin with SQLite's BEGIN IMMEDIATE and queue behind the importer's writes, so the
    poll could first see the checkpoint once the whole file was in; a plain autocommit read does not.
    """
    raw = db.engine.raw_connection()
    try:
        cur = raw.cursor()
        cur.execute("SELECT checkpoint FROM import_runs")
        row = cur.fetchone()
        raw.rollback()
        return (row[0] or 0) if row else 0
    finally:
        raw.close()


def test_an_import_killed_mid_file_resumes_and_ends_like_an_uninterrupted_run(
    settings, db, account, tmp_path
):
    path = big_file(tmp_path / "big.csv", 6_000)
    lst = make_list(db, account["id"])
    args = [
        *MISSIVA,
        "import",
        str(path),
        "--list",
        str(lst["id"]),
        "--account",
        str(account["id"]),
        "--json",
    ]
    env = cli_env(settings)

    # Small batches make the first run slow enough to be killed after its first commit, mid-file.
    victim = subprocess.Popen([*args, "--batch-size", "30"], env=env, stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    checkpoint = 0
    while checkpoint == 0 and victim.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
        checkpoint = read_checkpoint(db)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    with db.session() as session:
        killed = session.scalars(select(ImportRun)).one()
    assert victim.returncode == -signal.SIGKILL
    assert 0 < killed.checkpoint < killed.rows_total and killed.status == "importing"

    resumed = subprocess.run(args, env=env, capture_output=True, text=True, timeout=120)
    assert resumed.returncode == 0, resumed.stderr
    report = json.loads(resumed.stdout)
    assert report["id"] == killed.id  # the same run, continued
    assert report["counters"] == {
        "total": 6_006,
        "new": 6_000,
        "updated": 0,
        "unchanged": 0,
        "unsubscribed": 0,
        "skipped": 0,
        "errors": 6,
    }
    assert len(report["errors"]) == 6

    clean_account = make_account(db, "Clean")
    clean_list = make_list(db, clean_account["id"])
    clean = import_file(db, clean_account["id"], path, list_id=clean_list["id"], batch_size=5000)
    assert clean.status == "completed"
    assert audience_state(db, account["id"]) == audience_state(db, clean_account["id"])


def test_export_command_writes_yesterdays_unsubscribers_of_a_list_without_link_clicks(
    settings, db, account, tmp_path
):
    from datetime import UTC, datetime, time, timedelta

    from sqlalchemy import update

    from missiva.audience import subscriptions as subs_svc
    from missiva.audience.models import Subscription

    lst = make_list(db, account["id"])
    yesterday_noon = datetime.combine(datetime.now(UTC).date() - timedelta(days=1), time(12), tzinfo=UTC)
    with db.session() as session:
        for email, reason in (("link@example.it", "link"), ("bounce@example.it", "hard_bounce")):
            subs_svc.subscribe(session, account["id"], lst["id"], email=email)
            sub = subs_svc.unsubscribe(session, account["id"], lst["id"], email=email, reason=reason)
            session.execute(
                update(Subscription).where(Subscription.id == sub.id).values(unsubscribed_at=yesterday_noon)
            )
    out = tmp_path / "optout.csv"
    done = subprocess.run(
        [
            *MISSIVA, "export", "unsubscribers", "--account", str(account["id"]), "--list", str(lst["id"]),
            "--window", "previous_day", "--exclude-reason", "link", "-o", str(out),
        ],
        env=cli_env(settings), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines = out.read_text().splitlines()
    assert lines[0] == "email;mobile;idList;OptOut_Date;reason;optout_type;optout_nl"
    assert lines[1:] == [f"bounce@example.it;;{lst['id']};{yesterday_noon:%Y%m%dT%H%M%S};hard_bounce;8;"]
