"""Import runs as the service sees them: create, find again to resume, read, and report errors."""

from __future__ import annotations

import csv
import hashlib
import io
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from missiva.audience.lists import get_group, get_list
from missiva.errors import InvalidInput, NotFound
from missiva.sync.importer.options import ImportOptions
from missiva.sync.models import ImportRowError, ImportRun


class RunStatus(StrEnum):
    QUEUED = "queued"
    CHECKING = "checking"  # first pass: the whole file is read and checked, nothing is written
    IMPORTING = "importing"  # second pass: batches are committed one by one
    INTERRUPTED = "interrupted"  # stopped by an unexpected error; running it again resumes it
    COMPLETED = "completed"
    FAILED = "failed"  # the file was refused; nothing was imported


UNFINISHED = (RunStatus.QUEUED, RunStatus.CHECKING, RunStatus.IMPORTING, RunStatus.INTERRUPTED)


@dataclass(frozen=True)
class ImportCounters:
    """What an import did, row by row; the counts add up to `total`.

    - new: the row put a recipient on the list (a new recipient, or a known one new to the list)
    - updated: fields, groups, identities or status of a recipient on the list changed
    - unchanged: the row matched what is stored
    - unsubscribed: the row unsubscribed someone (an opt-out import)
    - skipped: a duplicate of a later row, or a pending/unsubscribed recipient left alone
    - errors: the row was refused; see the error report
    """

    total: int
    new: int
    updated: int
    unchanged: int
    unsubscribed: int
    skipped: int
    errors: int

    @classmethod
    def of(cls, run: ImportRun) -> ImportCounters:
        """The counters stored on `run`."""
        return cls(
            total=run.rows_total,
            new=run.rows_new,
            updated=run.rows_updated,
            unchanged=run.rows_unchanged,
            unsubscribed=run.rows_unsubscribed,
            skipped=run.rows_skipped,
            errors=run.rows_errors,
        )

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


def file_digest(path: Path) -> tuple[str, int]:
    """SHA-256 and size of a file, read in chunks: how a rerun recognises the file it was importing."""
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as fh:
        while chunk := fh.read(1024 * 1024):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def check_options(session: Session, account_id: int, options: ImportOptions) -> None:
    """Refuse options naming another account's (or no) list or groups; NotFound names which."""
    if options.list_id is not None:
        get_list(session, account_id, options.list_id)
    for group_id in options.group_ids:
        get_group(session, account_id, group_id, list_id=options.list_id)


def create_run(
    session: Session,
    account_id: int,
    path: Path,
    options: ImportOptions,
    *,
    filename: str | None = None,
    source: str = "api",
    source_ref: str | None = None,
    sync_job_id: int | None = None,
) -> ImportRun:
    """A queued run for the file at `path` (which must stay there until the run ends)."""
    check_options(session, account_id, options)
    try:
        sha256, size = file_digest(path)
    except OSError as exc:
        raise InvalidInput(f"{path.name!r} cannot be read: {exc.strerror}", field="file") from None
    run = ImportRun(
        account_id=account_id,
        status=RunStatus.QUEUED,
        source=source,
        source_ref=source_ref,
        sync_job_id=sync_job_id,
        filename=(filename or path.name)[:255],
        path=str(path),
        size=size,
        sha256=sha256,
        list_id=options.list_id,
        options=options.to_json(),
    )
    session.add(run)
    session.flush()
    return run


def find_resumable(
    session: Session, account_id: int, sha256: str, options: ImportOptions, *, source: str
) -> ImportRun | None:
    """The newest unfinished run of the same file with the same options, which a rerun continues."""
    wanted = options.to_json()
    candidates = session.scalars(
        select(ImportRun)
        .where(
            ImportRun.account_id == account_id,
            ImportRun.sha256 == sha256,
            ImportRun.source == source,
            ImportRun.status.in_([s.value for s in UNFINISHED]),
        )
        .order_by(ImportRun.id.desc())
    )
    for run in candidates:
        if run.options == wanted:
            return run
    return None


def get_run(session: Session, account_id: int, run_id: int) -> ImportRun:
    """The account's run; NotFound for a missing id or another account's."""
    run = session.get(ImportRun, run_id)
    if run is None or run.account_id != account_id:
        raise NotFound(f"import {run_id} does not exist", field="import")
    return run


def list_runs(session: Session, account_id: int, *, limit: int = 50) -> list[ImportRun]:
    """The account's latest runs, newest first."""
    stmt = (
        select(ImportRun)
        .where(ImportRun.account_id == account_id)
        .order_by(ImportRun.id.desc())
        .limit(max(1, min(limit, 500)))
    )
    return list(session.scalars(stmt))


def run_errors(session: Session, run_id: int, *, limit: int | None = None) -> list[dict[str, Any]]:
    """The run's row errors in file order, as plain dicts."""
    stmt = (
        select(ImportRowError)
        .where(ImportRowError.run_id == run_id)
        .order_by(ImportRowError.ordinal, ImportRowError.id)
    )
    if limit is not None:
        stmt = stmt.limit(limit)
    return [
        {"row": e.row, "entry": e.entry, "column": e.column, "reason": e.reason}
        for e in session.scalars(stmt)
    ]


def errors_csv(session: Session, run_id: int, *, delimiter: str = ";") -> Iterator[str]:
    """The error report as CSV text, streamed in chunks (row;entry;column;reason)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=delimiter, lineterminator="\r\n")
    writer.writerow(["row", "entry", "column", "reason"])
    stmt = (
        select(ImportRowError.row, ImportRowError.entry, ImportRowError.column, ImportRowError.reason)
        .where(ImportRowError.run_id == run_id)
        .order_by(ImportRowError.ordinal, ImportRowError.id)
        .execution_options(yield_per=5000)
    )
    for count, row in enumerate(session.execute(stmt), start=1):
        writer.writerow([row.row, row.entry or "", row.column or "", row.reason])
        if count % 5000 == 0:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


def run_view(run: ImportRun) -> dict[str, Any]:
    """The run as the API and the CLI show it."""
    return {
        "id": run.id,
        "status": run.status,
        "source": run.source,
        "filename": run.filename,
        "list_id": run.list_id,
        "options": run.options,
        "counters": ImportCounters.of(run).as_dict(),
        "error": run.error,
        "warnings": list(run.warnings or []),
        "created_at": run.created_at,
        "started_at": run.started_at,
        "finished_at": run.finished_at,
    }
