"""Sync jobs against real FTP, FTPS and SFTP servers: the scheduler picks a file up, imports it,
archives it, and never imports it twice; exports are pushed; credentials stay encrypted."""

from __future__ import annotations

import csv
import io
import os
from datetime import timedelta
from pathlib import Path

import pytest
from import_helpers import audience_state, make_list
from sqlalchemy import select, update
from sync_servers import PASSWORD, USER

import missiva.jobs
from missiva.audience import subscriptions as subs_svc
from missiva.db import utcnow
from missiva.errors import InvalidInput
from missiva.sync import sync_jobs
from missiva.sync.models import ImportRun, SyncJob, SyncJobFile
from missiva.sync.scheduler_tick import start_due_jobs

CSV = "email;nome\nuno@example.it;Uno\ndue@example.it;Due\nrotto;X\n"


def server_for(kind: str, request: pytest.FixtureRequest, folder: str) -> tuple[dict, Path]:
    """Job settings for a real server of `kind` and the local folder that server serves."""
    if kind == "sftp":
        sftp = request.getfixturevalue("sftp_server")
        (sftp.root / folder).mkdir()
        values = {
            "kind": "sftp",
            "port": sftp.port,
            "private_key": sftp.client_key_text,
            "known_host_key": sftp.host_key_line,
        }
        return values, sftp.root / folder
    server = request.getfixturevalue("ftps_server" if kind == "ftps" else "ftp_server")
    (server.root / folder).mkdir()
    values = {"kind": kind, "port": server.port, "password": PASSWORD}
    if kind == "ftps":
        values["ca_cert"] = request.getfixturevalue("tls_files").cert.read_text()
    return values, server.root / folder


def tick(db, settings, minutes: int = 0) -> list[int]:
    """One minute tick of the worker's scheduler (its tasks run inline in tests)."""
    return start_due_jobs(
        db, lambda job_id: missiva.jobs.run_sync_job(job_id), now=utcnow() + timedelta(minutes=minutes)
    )


@pytest.mark.parametrize("kind", ["ftp", "ftps", "sftp"])
def test_scheduled_job_imports_a_new_file_archives_it_and_never_imports_it_twice(
    db, settings, account, request, fresh_folder, kind
):
    lst = make_list(db, account["id"])
    values, folder = server_for(kind, request, fresh_folder)
    with db.session() as session:
        job = sync_jobs.create_job(
            session,
            account["id"],
            secret_key=settings.secret_key,
            name="nightly",
            host="127.0.0.1",
            username=USER,
            remote_dir=fresh_folder,
            pattern="clienti_*.csv",
            schedule="*/5 * * * *",
            options={"list_id": lst["id"]},
            disposal={"action": "archive", "folder": "done", "name_template": "{stamp}-{name}"},
            **values,
        )
        job_id = job.id
        session.execute(update(SyncJob).where(SyncJob.id == job_id).values(next_run_at=utcnow()))
    (folder / "clienti_20250314.csv").write_text(CSV, encoding="utf-8")
    (folder / "other.txt").write_text("not for us")

    assert tick(db, settings) == [job_id]

    state = audience_state(db, account["id"])
    assert [r[0] for r in state["recipients"]] == ["due@example.it", "uno@example.it"]
    assert sorted(p.name for p in folder.iterdir()) == ["done", "other.txt"]
    [archived] = list((folder / "done").iterdir())
    assert archived.name.endswith("-clienti_20250314.csv") and archived.read_text() == CSV
    with db.session() as session:
        run = session.scalars(select(ImportRun)).one()
        job = session.get(SyncJob, job_id)
        assert (run.source, run.sync_job_id, run.rows_new, run.rows_errors) == ("sync", job_id, 2, 1)
        assert job.last_status == "ok" and job.running_since is None and job.next_run_at > utcnow()

    # Not due yet: nothing happens. Due again, with the same file put back unchanged: not imported.
    assert tick(db, settings) == []
    os.replace(archived, folder / "clienti_20250314.csv")
    assert tick(db, settings, minutes=6) == [job_id]
    with db.session() as session:
        assert len(session.scalars(select(ImportRun)).all()) == 1
    assert audience_state(db, account["id"]) == state


def test_a_refused_file_is_left_in_place_reported_and_not_retried(db, settings, account, tmp_path):
    lst = make_list(db, account["id"])
    drop = tmp_path / "drop"
    drop.mkdir()
    (drop / "bad.csv").write_bytes(b"email;nome\nok@example.it;" + b"A" * 100_000 + b"\n")
    with db.session() as session:
        job_id = sync_jobs.create_job(
            session, account["id"], secret_key=settings.secret_key, name="local", kind="local",
            remote_dir=str(drop), pattern="*.csv", options={"list_id": lst["id"]},
            disposal={"action": "delete"},
        ).id  # fmt: skip
    report = missiva.jobs.run_sync_job.call_local(job_id, claimed=False)
    assert report["status"] == "partial"
    assert (
        report["imported"][0]["outcome"] == "failed"
        and "exceeds 65536 bytes" in report["imported"][0]["error"]
    )
    assert (drop / "bad.csv").exists()
    assert missiva.jobs.run_sync_job.call_local(job_id, claimed=False)["imported"] == []
    with db.session() as session:
        assert session.scalars(select(SyncJobFile.outcome)).all() == ["failed"]


def test_export_job_pushes_unsubscribers_since_its_last_run(db, settings, account, request, fresh_folder):
    lst = make_list(db, account["id"])
    values, folder = server_for("sftp", request, fresh_folder)
    with db.session() as session:
        for email in ("a@example.it", "b@example.it"):
            subs_svc.subscribe(session, account["id"], lst["id"], email=email)
        subs_svc.unsubscribe(session, account["id"], lst["id"], email="a@example.it", reason="link")
        job_id = sync_jobs.create_job(
            session, account["id"], secret_key=settings.secret_key, name="optouts", direction="export",
            host="127.0.0.1", username=USER, remote_dir=fresh_folder, schedule="0 6 * * *",
            options={"lists_in": [lst["id"]], "file_name": "optout-{stamp}.csv"}, **values,
        ).id  # fmt: skip
    first = missiva.jobs.run_sync_job.call_local(job_id, claimed=False)
    assert first["exported"]["rows"] == 1
    [pushed] = list(folder.iterdir())
    rows = list(csv.DictReader(io.StringIO(pushed.read_text()), delimiter=";"))
    assert [(r["email"], r["reason"], r["optout_type"]) for r in rows] == [("a@example.it", "link", "2")]
    with db.session() as session:
        subs_svc.unsubscribe(session, account["id"], lst["id"], email="b@example.it", reason="api")
    pushed.unlink()
    second = missiva.jobs.run_sync_job.call_local(job_id, claimed=False)
    assert second["exported"]["rows"] == 1
    [pushed] = list(folder.iterdir())
    assert "b@example.it" in pushed.read_text() and "a@example.it" not in pushed.read_text()


def test_credentials_are_encrypted_at_rest_and_never_shown(db, settings, account):
    with db.session() as session:
        job = sync_jobs.create_job(
            session, account["id"], secret_key=settings.secret_key, name="x", kind="ftp",
            host="ftp.example.com", username="u", password="hunter2-secret", options={},
        )  # fmt: skip
        stored = job.secrets
        view = sync_jobs.job_view(job, settings.secret_key)
    assert stored and "hunter2" not in stored
    assert view["has_password"] is True and "hunter2" not in repr(view)
    with pytest.raises(InvalidInput, match="cron"), db.session() as session:
        sync_jobs.create_job(
            session, account["id"], secret_key="k", name="y", kind="ftp", schedule="every day"
        )
