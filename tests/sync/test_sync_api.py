"""The batch-sync REST API as an integrator uses it, and the hosted drop as a customer's system uses it."""

from __future__ import annotations

import csv
import ftplib
import io
import zipfile

import asyncssh
import pytest
from import_helpers import count, make_list
from sqlalchemy import select

from missiva.audience import subscriptions as subs_svc
from missiva.audience.models import Recipient
from missiva.sync import drop_service
from missiva.sync.background_loop import BackgroundLoop
from missiva.sync.importer import ImportOptions
from missiva.sync.models import ImportRun

CSV = b"email;nome\nuno@example.it;Uno\nnope;Bad\ndue@example.it;Due\n"


def upload(client, account, data: bytes, name: str = "list.csv", **fields):
    form = {k: str(v) for k, v in fields.items()}
    return client.post(
        "/api/v1/imports", files={"file": (name, data, "text/csv")}, data=form, headers=account["headers"]
    )


def test_upload_import_status_and_error_report(client, account, other_account, db):
    lst = make_list(db, account["id"], groups=("VIP",))
    r = upload(client, account, CSV, list_id=lst["id"], group_ids=lst["groups"]["VIP"], import_type=1)
    assert r.status_code == 202, r.text
    run = r.json()
    assert run["status"] == "completed" and run["source"] == "api" and run["filename"] == "list.csv"
    assert run["counters"] == {
        "total": 3, "new": 2, "updated": 0, "unchanged": 0, "unsubscribed": 0, "skipped": 0, "errors": 1,
    }  # fmt: skip
    assert client.get(f"/api/v1/imports/{run['id']}", headers=account["headers"]).json() == run
    assert [x["id"] for x in client.get("/api/v1/imports", headers=account["headers"]).json()] == [run["id"]]

    report = client.get(f"/api/v1/imports/{run['id']}/errors.csv", headers=account["headers"])
    assert report.status_code == 200 and report.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(report.text), delimiter=";"))
    assert rows[0] == ["row", "entry", "column", "reason"]
    assert rows[1][:3] == ["3", "", "email"] and "invalid email 'nope'" in rows[1][3]

    for path in (f"/api/v1/imports/{run['id']}", f"/api/v1/imports/{run['id']}/errors.csv"):
        assert client.get(path, headers=other_account["headers"]).status_code == 404
    assert client.get("/api/v1/imports", headers=other_account["headers"]).json() == []


def test_bad_options_and_other_accounts_lists_are_refused_before_anything_runs(
    client, account, other_account, db
):
    theirs = make_list(db, other_account["id"])
    r = upload(client, account, CSV, list_id=theirs["id"])
    assert r.status_code == 404 and r.json()["errors"][0]["field"] == "list"
    r = upload(client, account, CSV, as_opt_out="true", force_opt_in="true")
    assert r.status_code == 422 and "as_opt_out" in r.json()["detail"]
    r = client.post("/api/v1/imports", data={"list_id": "1"}, headers=account["headers"])
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "file"
    assert count(db, ImportRun) == 0


def test_hostile_upload_fails_the_run_and_imports_nothing(client, account, db):
    lst = make_list(db, account["id"])
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("ok.csv", "email\na@example.it\n")
        archive.writestr("../../etc/evil.csv", "email\nb@example.it\n")
    r = upload(client, account, buffer.getvalue(), name="evil.zip", list_id=lst["id"])
    assert r.status_code == 202
    assert r.json()["status"] == "failed" and "escapes the archive" in r.json()["error"]
    assert count(db, Recipient) == 0


def test_import_of_a_file_in_the_drop_named_by_json(client, account, db, settings):
    lst = make_list(db, account["id"])
    r = client.post(
        "/api/v1/drop-logins",
        json={"username": "shop-a", "password": "a long password!", "options": {"list_id": lst["id"]}},
        headers=account["headers"],
    )
    assert r.status_code == 201 and "password" not in r.json()
    folder = settings.data_dir / "drop" / "shop-a"
    folder.mkdir(parents=True)
    (folder / "clienti.csv").write_bytes(CSV)
    r = client.post(
        "/api/v1/imports", json={"drop_file": "clienti.csv", "list_id": lst["id"]}, headers=account["headers"]
    )
    assert r.status_code == 202 and r.json()["counters"]["new"] == 2
    for name in ("../secret.csv", "missing.csv"):
        r = client.post(
            "/api/v1/imports", json={"drop_file": name, "list_id": lst["id"]}, headers=account["headers"]
        )
        assert r.status_code in (404, 422) and r.json()["errors"][0]["field"] == "drop_file"


def test_sync_job_crud_never_returns_secrets_and_is_isolated(client, account, other_account, db, tmp_path):
    lst = make_list(db, account["id"])
    body = {
        "name": "nightly",
        "kind": "sftp",
        "host": "sftp.example.com",
        "username": "shop",
        "password": "s3cret-password",
        "remote_dir": "in",
        "pattern": "re:clienti_\\d+\\.csv",
        "schedule": "30 1 * * *",
        "options": {"list_id": lst["id"], "as_pending": True},
        "disposal": {"action": "rename", "name_template": "{name}.done"},
    }
    r = client.post("/api/v1/sync-jobs", json=body, headers=account["headers"])
    assert r.status_code == 201, r.text
    job = r.json()
    assert job["has_password"] is True and "s3cret" not in r.text
    assert job["next_run_at"] is not None and job["options"]["as_pending"] is True
    r = client.patch(
        f"/api/v1/sync-jobs/{job['id']}", json={"schedule": "0 3 * * 1"}, headers=account["headers"]
    )
    assert r.json()["schedule"] == "0 3 * * 1" and r.json()["has_password"] is True
    bad = client.post("/api/v1/sync-jobs", json={**body, "schedule": "nightly"}, headers=account["headers"])
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "schedule"
    for method in ("get", "patch", "delete"):
        kwargs = {"json": {"name": "x"}} if method == "patch" else {}
        r = getattr(client, method)(
            f"/api/v1/sync-jobs/{job['id']}", headers=other_account["headers"], **kwargs
        )
        assert r.status_code == 404
    assert client.delete(f"/api/v1/sync-jobs/{job['id']}", headers=account["headers"]).status_code == 204


def test_run_now_imports_from_a_local_folder(client, account, db, tmp_path):
    lst = make_list(db, account["id"])
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a.csv").write_bytes(CSV)
    body = {"name": "local", "kind": "local", "remote_dir": str(folder), "options": {"list_id": lst["id"]}}
    job = client.post("/api/v1/sync-jobs", json=body, headers=account["headers"]).json()
    r = client.post(f"/api/v1/sync-jobs/{job['id']}/run", headers=account["headers"])
    assert r.status_code == 202 and r.json()["job"]["last_status"] == "ok"
    assert sorted(p.name for p in folder.iterdir()) == ["archive"]
    assert count(db, Recipient) == 2


def test_unsubscriber_export_download(client, account, db):
    lst = make_list(db, account["id"])
    with db.session() as session:
        for email, reason in (
            ("a@example.it", "link"),
            ("b@example.it", "hard_bounce"),
            ("c@example.it", None),
        ):
            subs_svc.subscribe(session, account["id"], lst["id"], email=email, fields={"nome": email[0]})
            if reason:
                subs_svc.unsubscribe(session, account["id"], lst["id"], email=email, reason=reason)
    params = {"list": lst["id"], "exclude_reason": "link", "field": 1}
    r = client.get("/api/v1/exports/unsubscribers", params=params, headers=account["headers"])
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(r.text), delimiter=";"))
    assert [(x["email"], x["reason"], x["optout_type"], x["nome"]) for x in rows] == [
        ("b@example.it", "hard_bounce", "8", "b")
    ]
    r = client.get("/api/v1/exports/unsubscribers", params={"zip": "true"}, headers=account["headers"])
    with zipfile.ZipFile(io.BytesIO(r.content)) as archive:
        assert archive.read("unsubscribers.csv").decode().count("\n") == 3
    bad = client.get("/api/v1/exports/unsubscribers", params={"reason": "bored"}, headers=account["headers"])
    assert bad.status_code == 422 and "unknown reason 'bored'" in bad.json()["detail"]
    full = client.get("/api/v1/exports/recipients", params={"list": lst["id"]}, headers=account["headers"])
    assert sorted(x["status"] for x in csv.DictReader(io.StringIO(full.text), delimiter=";")) == [
        "subscribed", "unsubscribed", "unsubscribed",
    ]  # fmt: skip


@pytest.fixture
def drops(db, settings, monkeypatch):
    """The FTP and SFTP drops as `missiva serve` starts them, on free ports."""
    import missiva.jobs

    monkeypatch.setenv("MISSIVA_DROP_FTP_PORT", "0")
    monkeypatch.setenv("MISSIVA_DROP_SFTP_PORT", "0")
    started = drop_service.start_from_environment(settings, db, missiva.jobs.run_import_task)
    yield started
    started.stop()


def test_a_file_uploaded_to_the_hosted_drop_is_imported_when_complete(db, account, drops, settings):
    lst = make_list(db, account["id"])
    with db.session() as session:
        options = ImportOptions(list_id=lst["id"])
        drop_service.create_login(session, account["id"], "shop-ftp", "a long password!", options)
    ftp_server, sftp_server = drops.servers
    host, port = ftp_server.address
    with ftplib.FTP() as ftp:  # noqa: S321 - the plain-FTP drop is what this test runs
        ftp.connect(host, port, timeout=10)
        ftp.login("shop-ftp", "a long password!")
        ftp.storbinary("STOR clienti.csv", io.BytesIO(CSV))

    loop = BackgroundLoop("test-sftp-client")
    try:

        async def sftp_upload() -> None:
            host, port = sftp_server.address
            async with (
                asyncssh.connect(
                    host, port, username="shop-ftp", password="a long password!", known_hosts=None
                ) as conn,
                conn.start_sftp_client() as sftp,
                sftp.open("second.csv", "wb") as fh,
            ):
                await fh.write(b"email\ntre@example.it\n")

        loop.run(sftp_upload(), timeout=30)
    finally:
        loop.stop()
    drops.stop()  # waits for pending upload notifications

    with db.session() as session:
        runs = session.scalars(select(ImportRun).order_by(ImportRun.id)).all()
        emails = sorted(session.scalars(select(Recipient.email)))
    assert [(r.source, r.filename, r.status) for r in runs] == [
        ("drop", "clienti.csv", "completed"),
        ("drop", "second.csv", "completed"),
    ]
    assert emails == ["due@example.it", "tre@example.it", "uno@example.it"]
