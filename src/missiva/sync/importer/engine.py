"""The import engine: check the whole file, then apply it in committed, resumable batches.

1. Check (nothing is written): the file is read end to end. Anything that voids it (a bomb, a 10 MB
   field, an archive entry escaping with '../', a size over the limit, an unreadable row) fails the
   run here, so a refused file never leaves half an import behind. The same pass notes which rows are
   duplicates of a later row (the later one wins) by a 64-bit hash of each row's identity, which
   keeps memory to a few dozen bytes per distinct recipient.
2. Apply: the file is read again; rows are mapped, validated and grouped in batches. Each batch is
   one transaction: the audience changes and their events (`BatchWriter`), the row errors, the
   counters and the checkpoint (the ordinal of the batch's last record). A run killed at any moment
   resumes after its last committed batch and ends in the state an uninterrupted run reaches.

Reading and validating (Python) overlaps with applying (the database): batches go to a writer thread
through a queue of two, so the database works on one batch while the next is prepared.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import insert, update

from missiva.db import Database, utcnow
from missiva.errors import DomainError
from missiva.sync.errors import ImportFileError
from missiva.sync.importer.batch_writer import BatchOutcome, BatchWriter, PreparedRow
from missiva.sync.importer.options import ImportOptions
from missiva.sync.importer.prepare import AccountContext, IdentityKey, RowPreparer
from missiva.sync.importer.runs import RunStatus, file_digest
from missiva.sync.mapping import ColumnMapping
from missiva.sync.models import ImportRowError, ImportRun
from missiva.sync.readers import ReadLimits, Record, RecordSource, RowError, open_source

log = logging.getLogger(__name__)

DEFAULT_BATCH_SIZE = 5000
# A run whose worker has not been heard of for this long is taken to have died; another may resume it.
LEASE = timedelta(minutes=10)
Progress = Callable[[str, int, int | None], None]
"""(phase "checking" | "importing", records done, records in total when known)."""


@dataclass
class _Batch:
    rows: list[PreparedRow]
    errors: list[tuple[int, RowError]]
    error_rows: int
    skipped: int
    last_ordinal: int


def run_import(
    db: Database,
    run_id: int,
    *,
    progress: Progress | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    limits: ReadLimits | None = None,
    force: bool = False,
) -> ImportRun:
    """Run (or resume) import `run_id` to its end; the run as it ends, detached.

    A run another worker is working on (heard of within `LEASE`) is left alone unless `force` (the
    CLI's rerun after a kill: the operator knows). File problems end the run as FAILED with the
    reason; an unexpected error marks it INTERRUPTED (running it again resumes it) and is re-raised.
    """
    now = utcnow()
    with db.session() as session:
        # One UPDATE decides who runs it, so two workers cannot both pick up the same run.
        claimable = ImportRun.status.in_([RunStatus.QUEUED, RunStatus.INTERRUPTED]) | (
            ImportRun.status.in_([RunStatus.CHECKING, RunStatus.IMPORTING])
            & (ImportRun.updated_at < now - LEASE)
        )
        if force:
            claimable = ImportRun.status.not_in([RunStatus.COMPLETED, RunStatus.FAILED])
        claimed = session.execute(
            update(ImportRun)
            .where(ImportRun.id == run_id, claimable)
            .values(status=RunStatus.CHECKING, updated_at=now)
            .execution_options(synchronize_session=False)
        ).rowcount
        run = session.get(ImportRun, run_id)
        if run is None:
            raise LookupError(f"import run {run_id} does not exist")
        if not claimed:
            return run
        account_id = run.account_id
        options = ImportOptions.from_json(run.options)
        path = Path(run.path or "")
        expected_sha = run.sha256
        checkpoint = run.checkpoint
        run.started_at = run.started_at or now
        context = AccountContext.load(session, account_id)
    limits = limits or ReadLimits()
    try:
        if expected_sha and file_digest(path)[0] != expected_sha:
            raise ImportFileError(f"{path.name!r} changed since this import started; start a new import")
        mapping, warnings, total, last_of = _check(path, options, context, limits, progress)
        _update(db, run_id, status=RunStatus.IMPORTING, rows_total=total, warnings=warnings)
        importer = _Importer(db, run_id, account_id, options, context, mapping, last_of, batch_size)
        importer.run(path, limits, checkpoint, total, progress)
    except (ImportFileError, DomainError, OSError) as exc:
        message = exc.message if isinstance(exc, DomainError) else str(exc)
        if isinstance(exc, OSError):
            message = f"{path.name!r} cannot be read: {exc.strerror or exc}"
        _update(db, run_id, status=RunStatus.FAILED, error=message, finished_at=utcnow())
    except BaseException as exc:
        _update(db, run_id, status=RunStatus.INTERRUPTED, error=f"interrupted: {exc!r}"[:2000])
        raise
    else:
        _update(db, run_id, status=RunStatus.COMPLETED, error=None, finished_at=utcnow())
    with db.session() as session:
        final = session.get(ImportRun, run_id)
        assert final is not None
        return final


def _update(db: Database, run_id: int, **values: Any) -> None:
    with db.session() as session:
        session.execute(update(ImportRun).where(ImportRun.id == run_id).values(updated_at=utcnow(), **values))


def _open(path: Path, options: ImportOptions, limits: ReadLimits) -> RecordSource:
    return open_source(path, limits=limits, delimiter=options.delimiter, encoding=options.encoding)


def _mapping(source: RecordSource, options: ImportOptions, context: AccountContext) -> ColumnMapping:
    return ColumnMapping.from_header(
        source.header,
        context.fields,
        options.mapping,
        default_list=str(options.list_id) if options.list_id is not None else None,
        default_groups=[str(g) for g in options.group_ids],
    )


def _check(
    path: Path,
    options: ImportOptions,
    context: AccountContext,
    limits: ReadLimits,
    progress: Progress | None,
) -> tuple[ColumnMapping, list[str], int, dict[int, int]]:
    """Read the whole file once; (mapping, warnings, record count, last ordinal of duplicated keys)."""
    with _open(path, options, limits) as source:
        mapping = _mapping(source, options, context)
        warnings = [*source.warnings, *mapping.warnings]
        key_of = IdentityKey(mapping)
        seen: set[int] = set()
        last_of: dict[int, int] = {}
        total = 0
        for total, record in enumerate(source, start=1):
            key = key_of(record)
            if key is not None:
                digest = hash(key)
                if digest in seen:
                    last_of[digest] = total
                else:
                    seen.add(digest)
            if progress is not None and total % 50_000 == 0:
                progress("checking", total, None)
        del seen
    if progress is not None:
        progress("checking", total, total)
    return mapping, warnings, total, last_of


class _Importer:
    """The second pass: prepare batches in this thread, apply them in a writer thread."""

    def __init__(
        self,
        db: Database,
        run_id: int,
        account_id: int,
        options: ImportOptions,
        context: AccountContext,
        mapping: ColumnMapping,
        last_of: dict[int, int],
        batch_size: int,
    ) -> None:
        self.db = db
        self.run_id = run_id
        self.preparer = RowPreparer(context, mapping, options)
        self.key_of = IdentityKey(mapping)
        self.last_of = last_of
        self.batch_size = batch_size
        self.writer = BatchWriter(db.engine.dialect.name, account_id, options)
        self.committed = 0

    def run(
        self, path: Path, limits: ReadLimits, checkpoint: int, total: int, progress: Progress | None
    ) -> None:
        batches: queue.Queue[_Batch | None] = queue.Queue(maxsize=2)
        failure: list[BaseException] = []

        def write() -> None:
            try:
                while (batch := batches.get()) is not None:
                    if not failure:
                        self._commit(batch)
                        if progress is not None:
                            progress("importing", batch.last_ordinal, total)
            except BaseException as exc:
                failure.append(exc)
                while batches.get() is not None:  # drain so the producer never blocks
                    pass

        thread = threading.Thread(target=write, name=f"import-{self.run_id}", daemon=True)
        thread.start()
        try:
            with _open(path, self.preparer.options, limits) as source:
                for batch in self._batches(source, checkpoint):
                    if failure:
                        break
                    batches.put(batch)
        finally:
            batches.put(None)
            thread.join()
        if failure:
            raise failure[0]

    def _batches(self, source: RecordSource, checkpoint: int) -> Iterator[_Batch]:
        batch = _Batch([], [], 0, 0, checkpoint)
        by_identity: dict[str, int] = {}
        for ordinal, record in enumerate(source, start=1):
            if ordinal <= checkpoint:
                continue
            self._add(batch, by_identity, record, ordinal)
            batch.last_ordinal = ordinal
            if ordinal - checkpoint >= self.batch_size:
                yield batch
                checkpoint = ordinal
                batch = _Batch([], [], 0, 0, checkpoint)
                by_identity = {}
        if batch.last_ordinal > checkpoint:
            yield batch

    def _add(self, batch: _Batch, by_identity: dict[str, int], record: Record, ordinal: int) -> None:
        key = self.key_of(record)
        if key is not None:
            last = self.last_of.get(hash(key))
            if last is not None and last != ordinal:
                batch.skipped += 1  # a later row of the file has the same recipient
                return
        row, errors = self.preparer.prepare(record, ordinal)
        if row is None:
            batch.error_rows += 1
            batch.errors.extend((ordinal, e) for e in errors)
            return
        # Two spellings of one identity ("333 1234567" and "+39 333 1234567") meet here, normalised.
        identity = row[1] or f"m:{row[2]}"
        earlier = by_identity.get(identity)
        if earlier is not None:
            batch.rows[earlier] = row
            batch.skipped += 1
            return
        by_identity[identity] = len(batch.rows)
        batch.rows.append(row)

    def _commit(self, batch: _Batch) -> None:
        now = utcnow()
        with self.db.session() as session:
            outcome = self.writer.apply(session, batch.rows, now) if batch.rows else BatchOutcome()
            self.committed += 1
            if self.committed & (self.committed - 1) == 0:  # batches 1, 2, 4, 8, ...
                self.writer.refresh_statistics(session)
            if batch.errors:
                session.execute(
                    insert(ImportRowError),
                    [
                        {
                            "run_id": self.run_id,
                            "ordinal": ordinal,
                            "row": error.row,
                            "entry": error.entry,
                            "column": error.column,
                            "reason": error.reason[:2000],
                        }
                        for ordinal, error in batch.errors
                    ],
                )
            session.execute(
                update(ImportRun)
                .where(ImportRun.id == self.run_id)
                .values(
                    checkpoint=batch.last_ordinal,
                    rows_new=ImportRun.rows_new + outcome.new,
                    rows_updated=ImportRun.rows_updated + outcome.updated,
                    rows_unchanged=ImportRun.rows_unchanged + outcome.unchanged,
                    rows_unsubscribed=ImportRun.rows_unsubscribed + outcome.unsubscribed,
                    rows_skipped=ImportRun.rows_skipped + outcome.skipped + batch.skipped,
                    rows_errors=ImportRun.rows_errors + batch.error_rows,
                    updated_at=now,
                )
            )
