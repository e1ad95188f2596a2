"""Sync jobs: import the files a customer leaves on an FTP/FTPS/SFTP server (or a local folder), or push
an unsubscriber export there, on a cron schedule.

An imported file is disposed of (archived, renamed or deleted, as the job says) and its name, size and
time are recorded, so neither the file nor an identical copy put back is imported twice. A file the
import refuses stays where it is for the customer to look at, and is not retried until it changes.
"""

from __future__ import annotations

import logging
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from missiva.db import Database, utcnow
from missiva.errors import InvalidInput, NotFound
from missiva.sync.credentials import seal, unseal
from missiva.sync.errors import ImportFileError, TransportError
from missiva.sync.export import UnsubscriberExport, Window, export_unsubscribers
from missiva.sync.importer import ImportOptions, RunStatus, create_run, run_import
from missiva.sync.importer.runs import check_options
from missiva.sync.models import ImportRun, SyncJob, SyncJobFile
from missiva.sync.readers import ReadLimits
from missiva.sync.schedule import check_schedule, claim, next_run, release
from missiva.sync.transports import AfterImport, Disposal, RemoteFile, Transport, TransportConfig, dispose
from missiva.sync.transports import open_transport as connect

log = logging.getLogger(__name__)

KINDS = ("local", "ftp", "ftps", "sftp")
DIRECTIONS = ("import", "export")
SECRET_FIELDS = ("password", "private_key", "private_key_passphrase")
_EDITABLE = (
    "name", "kind", "host", "port", "username", "known_host_key", "ca_cert", "verify_tls",
    "remote_dir", "pattern", "schedule", "active",
)  # fmt: skip


@dataclass
class JobReport:
    """What one run of a job did."""

    job_id: int
    status: str = "ok"
    imported: list[dict[str, Any]] = field(default_factory=list)
    exported: dict[str, Any] | None = None
    error: str | None = None


def _check_kind(kind: str) -> str:
    if kind not in KINDS:
        raise InvalidInput(f"kind must be one of {', '.join(KINDS)}", field="kind")
    return kind


def _check_disposal(data: dict[str, Any] | None) -> dict[str, Any]:
    data = dict(data or {})
    try:
        disposal = Disposal(
            action=AfterImport(data.get("action", AfterImport.ARCHIVE)),
            folder=data.get("folder", "archive"),
            name_template=data.get("name_template", "{stamp}-{name}"),
        )
    except (ValueError, TransportError) as exc:
        raise InvalidInput(f"invalid disposal: {exc}", field="disposal") from None
    if disposal.action is AfterImport.KEEP:
        raise InvalidInput("a processed file must be archived, renamed or deleted", field="disposal")
    return {
        "action": disposal.action.value,
        "folder": disposal.folder,
        "name_template": disposal.name_template,
    }


def _check_options(
    session: Session, account_id: int, direction: str, options: dict[str, Any]
) -> dict[str, Any]:
    options = dict(options or {})
    if direction == "import":
        parsed = ImportOptions.from_json(options)
        check_options(session, account_id, parsed)
        return parsed.to_json()
    file_name = options.pop("file_name", "unsubscribers-{stamp}.csv")
    options.setdefault("window", Window.SINCE_LAST.value)
    _export_spec(options, 0)
    return {**options, "file_name": file_name}


def _export_spec(options: dict[str, Any], job_id: int) -> UnsubscriberExport:
    data = {k: v for k, v in options.items() if k != "file_name"}
    data.setdefault("stream", f"job-{job_id}")
    for key in ("lists_in", "lists_out", "reasons_in", "reasons_out", "fields"):
        if key in data:
            data[key] = tuple(data[key] or ())
    try:
        return UnsubscriberExport(**data)
    except TypeError as exc:
        raise InvalidInput(f"invalid export option: {exc}", field="options") from None
    except ValueError as exc:
        raise InvalidInput(str(exc), field="options") from None


def create_job(session: Session, account_id: int, *, secret_key: str, **values: Any) -> SyncJob:
    """Create a job. `values`: name, direction (import|export), kind, host, port, username, password,
    private_key, private_key_passphrase, known_host_key, ca_cert, verify_tls, remote_dir, pattern,
    schedule (cron, UTC), options (import options, or export filters plus file_name), disposal, active."""
    direction = values.get("direction", "import")
    if direction not in DIRECTIONS:
        raise InvalidInput("direction must be import or export", field="direction")
    job = SyncJob(account_id=account_id, direction=direction, kind=_check_kind(values.get("kind", "")))
    if not (values.get("name") or "").strip():
        raise InvalidInput("name is empty", field="name")
    for key in _EDITABLE:
        if key in values and values[key] is not None:
            setattr(job, key, values[key])
    job.name = job.name.strip()[:200]
    job.schedule = check_schedule(values.get("schedule") or "0 2 * * *")
    job.options = _check_options(session, account_id, direction, values.get("options") or {})
    job.disposal = _check_disposal(values.get("disposal"))
    job.secrets = seal({k: values.get(k) for k in SECRET_FIELDS}, secret_key)
    job.next_run_at = next_run(job.schedule, utcnow())
    session.add(job)
    session.flush()
    return job


def update_job(session: Session, account_id: int, job_id: int, *, secret_key: str, **values: Any) -> SyncJob:
    """Change a job; secrets given replace the stored ones (an empty string removes one)."""
    job = get_job(session, account_id, job_id)
    if "kind" in values and values["kind"] is not None:
        _check_kind(values["kind"])
    for key in _EDITABLE:
        if key in values and values[key] is not None:
            setattr(job, key, values[key])
    if values.get("schedule"):
        job.schedule = check_schedule(values["schedule"])
        job.next_run_at = next_run(job.schedule, utcnow())
    if values.get("options") is not None:
        job.options = _check_options(session, account_id, job.direction, values["options"])
    if values.get("disposal") is not None:
        job.disposal = _check_disposal(values["disposal"])
    if any(values.get(k) is not None for k in SECRET_FIELDS):
        current = unseal(job.secrets, secret_key)
        current.update({k: values[k] for k in SECRET_FIELDS if values.get(k) is not None})
        job.secrets = seal(current, secret_key)
    job.updated_at = utcnow()
    session.flush()
    return job


def get_job(session: Session, account_id: int, job_id: int) -> SyncJob:
    """The account's job; NotFound for a missing id or another account's."""
    job = session.get(SyncJob, job_id)
    if job is None or job.account_id != account_id:
        raise NotFound(f"sync job {job_id} does not exist", field="sync_job")
    return job


def list_jobs(session: Session, account_id: int) -> list[SyncJob]:
    """The account's jobs, oldest first."""
    return list(session.scalars(select(SyncJob).where(SyncJob.account_id == account_id).order_by(SyncJob.id)))


def delete_job(session: Session, account_id: int, job_id: int) -> None:
    """Delete a job and its processed-file records."""
    session.delete(get_job(session, account_id, job_id))


def job_view(job: SyncJob, secret_key: str) -> dict[str, Any]:
    """The job as the API and CLI show it: which secrets are set, never their values."""
    try:
        stored = set(unseal(job.secrets, secret_key))
    except Exception:
        stored = set()
    return {
        "id": job.id,
        "name": job.name,
        "direction": job.direction,
        "kind": job.kind,
        "host": job.host,
        "port": job.port,
        "username": job.username,
        "has_password": "password" in stored,
        "has_private_key": "private_key" in stored,
        "known_host_key": job.known_host_key,
        "verify_tls": job.verify_tls,
        "remote_dir": job.remote_dir,
        "pattern": job.pattern,
        "schedule": job.schedule,
        "options": job.options,
        "disposal": job.disposal,
        "active": job.active,
        "next_run_at": job.next_run_at,
        "last_run_at": job.last_run_at,
        "last_status": job.last_status,
        "last_error": job.last_error,
    }


@contextmanager
def open_job_transport(job: SyncJob, secret_key: str) -> Iterator[Transport]:
    """Connect to the job's file store with its decrypted credentials."""
    secrets = unseal(job.secrets, secret_key)
    with tempfile.TemporaryDirectory(prefix="missiva-ca-") as scratch:
        ca_file = None
        if job.ca_cert:
            ca_file = str(Path(scratch) / "ca.pem")
            Path(ca_file).write_text(job.ca_cert)
        config = TransportConfig(
            kind=job.kind,  # type: ignore[arg-type]
            host=job.host,
            port=job.port,
            username=job.username,
            password=secrets.get("password"),
            private_key=secrets.get("private_key"),
            private_key_passphrase=secrets.get("private_key_passphrase"),
            remote_dir=job.remote_dir,
            known_host_key=job.known_host_key,
            ca_file=ca_file,
            verify_tls=job.verify_tls,
        )
        with connect(config) as transport:
            yield transport


def fingerprint(remote: RemoteFile) -> str:
    """Name, size and time: a file put back unchanged has the same fingerprint."""
    stamp = remote.mtime.isoformat() if remote.mtime else "-"
    return f"{remote.name}|{remote.size if remote.size is not None else '-'}|{stamp}"


def run_job(
    db: Database,
    job_id: int,
    *,
    secret_key: str,
    work_dir: Path,
    now: datetime | None = None,
    claimed: bool = False,
    limits: ReadLimits | None = None,
) -> JobReport:
    """Run one job now. The scheduler claims jobs before queueing them (`claimed`); a manual run claims
    it here, and reports "busy" if a run is already under way. Transfer and file problems do not
    raise: they are recorded on the job and in the report."""
    now = now or utcnow()
    report = JobReport(job_id)
    with db.session() as session:
        if not claimed and not claim(session, job_id, now, scheduled=False):
            report.status = "busy"
            return report
        job = session.get(SyncJob, job_id)
        assert job is not None
        session.expunge(job)
    try:
        with open_job_transport(job, secret_key) as transport:
            if job.direction == "import":
                _import_files(db, job, transport, report, work_dir, limits or ReadLimits())
            else:
                _push_export(db, job, transport, report, now)
    except TransportError as exc:
        report.status, report.error = "error", str(exc)
    except Exception as exc:  # recorded on the job for the operator, then re-raised for the worker log
        with db.session() as session:
            release(session, job_id, utcnow(), "error", repr(exc)[:2000])
        raise
    if report.status == "ok" and any(f["outcome"] != RunStatus.COMPLETED for f in report.imported):
        report.status = "partial"
    with db.session() as session:
        release(session, job_id, utcnow(), report.status, report.error)
    return report


def _import_files(
    db: Database, job: SyncJob, transport: Transport, report: JobReport, work_dir: Path, limits: ReadLimits
) -> None:
    with db.session() as session:
        done = set(session.scalars(select(SyncJobFile.fingerprint).where(SyncJobFile.job_id == job.id)))
    listing = sorted(transport.list(job.pattern or "*"), key=lambda f: (f.mtime is None, f.mtime, f.name))
    disposal = Disposal(**job.disposal) if job.disposal else Disposal()
    options = ImportOptions.from_json(job.options)
    folder = work_dir / f"job-{job.id}"
    folder.mkdir(parents=True, exist_ok=True)
    for remote in listing:
        key = fingerprint(remote)
        if key in done:
            continue
        local = folder / f"{uuid.uuid4().hex}-{remote.name}"
        entry: dict[str, Any] = {"file": remote.name, "run_id": None}
        try:
            try:
                with local.open("wb") as out:
                    transport.download(remote.name, out, max_bytes=limits.max_file_bytes)
            except ImportFileError as exc:  # too large to even download
                entry |= {"outcome": RunStatus.FAILED.value, "error": str(exc)}
                _remember(db, job, remote, key, entry, None)
                report.imported.append(entry)
                continue
            run_id = _run_for(db, job, local, remote, key, options)
            final = run_import(db, run_id, limits=limits)
            entry |= {"run_id": run_id, "outcome": final.status, "error": final.error}
            moved = None
            if final.status == RunStatus.COMPLETED:
                moved = dispose(transport, remote.name, disposal, now=utcnow())
            entry["moved_to"] = moved
            _remember(db, job, remote, key, entry, moved)
            report.imported.append(entry)
        finally:
            local.unlink(missing_ok=True)


def _run_for(
    db: Database, job: SyncJob, local: Path, remote: RemoteFile, key: str, options: ImportOptions
) -> int:
    """The run importing this file: an unfinished one from a run of the job that died, or a new one."""
    ref = f"sync job {job.id}: {key}"[:500]
    with db.session() as session:
        unfinished = session.scalar(
            select(ImportRun)
            .where(
                ImportRun.sync_job_id == job.id,
                ImportRun.source_ref == ref,
                ImportRun.status.in_(
                    [RunStatus.QUEUED, RunStatus.CHECKING, RunStatus.IMPORTING, RunStatus.INTERRUPTED]
                ),
            )
            .order_by(ImportRun.id.desc())
        )
        if unfinished is not None:
            unfinished.path = str(local)
            return unfinished.id
        run = create_run(
            session,
            job.account_id,
            local,
            options,
            filename=remote.name,
            source="sync",
            source_ref=ref,
            sync_job_id=job.id,
        )
        return run.id


def _remember(
    db: Database, job: SyncJob, remote: RemoteFile, key: str, entry: dict[str, Any], moved: str | None
) -> None:
    with db.session() as session:
        session.add(
            SyncJobFile(
                job_id=job.id,
                fingerprint=key[:500],
                name=remote.name[:255],
                size=remote.size,
                mtime=remote.mtime,
                run_id=entry.get("run_id"),
                outcome=str(entry.get("outcome")),
                moved_to=moved,
            )
        )


def _push_export(db: Database, job: SyncJob, transport: Transport, report: JobReport, now: datetime) -> None:
    spec = _export_spec(dict(job.options), job.id)
    name_template = job.options.get("file_name") or "unsubscribers-{stamp}.csv"
    name = name_template.format(stamp=now.strftime("%Y%m%dT%H%M%S"), job=job.id)
    if spec.zipped and not name.endswith(".zip"):
        name += ".zip"
    with tempfile.TemporaryFile() as buffer, db.session() as session:
        result = export_unsubscribers(session, job.account_id, spec, buffer, now=now)
        buffer.seek(0)
        transport.upload(buffer, name)  # the mark commits only once the file is there
    report.exported = {"file": name, "rows": result.rows}
