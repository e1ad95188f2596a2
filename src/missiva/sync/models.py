"""Tables of the batch sync: import runs with their row errors, sync jobs and the files they processed,
unsubscriber export marks, and the logins of Missiva's own drop servers."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from missiva.db import Base, BigId, JSONType, UTCDateTime, utcnow


class ImportRun(Base):
    """One import of one file: its options, where it stands, and what it did.

    `checkpoint` is the ordinal of the last record whose batch committed; a resumed run skips up to
    it, so a run killed at any point ends as if it had never stopped.
    """

    __tablename__ = "import_runs"
    __table_args__ = (Index("ix_import_runs_account_status", "account_id", "status"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    status: Mapped[str] = mapped_column(String(12), default="queued")
    source: Mapped[str] = mapped_column(String(10), default="api")
    # Where the file came from, e.g. "sync job 3: clienti.csv|1234|2025-01-31T02:00:00" (resume key).
    source_ref: Mapped[str | None] = mapped_column(String(500))
    sync_job_id: Mapped[int | None] = mapped_column(Integer)
    filename: Mapped[str] = mapped_column(String(255))
    path: Mapped[str | None] = mapped_column(Text)
    size: Mapped[int | None] = mapped_column(BigInteger)
    sha256: Mapped[str | None] = mapped_column(String(64))
    list_id: Mapped[int | None] = mapped_column(Integer)
    options: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    checkpoint: Mapped[int] = mapped_column(BigInteger, default=0)
    rows_total: Mapped[int] = mapped_column(BigInteger, default=0)
    rows_new: Mapped[int] = mapped_column(BigInteger, default=0)
    rows_updated: Mapped[int] = mapped_column(BigInteger, default=0)
    rows_unchanged: Mapped[int] = mapped_column(BigInteger, default=0)
    rows_unsubscribed: Mapped[int] = mapped_column(BigInteger, default=0)
    rows_skipped: Mapped[int] = mapped_column(BigInteger, default=0)
    rows_errors: Mapped[int] = mapped_column(BigInteger, default=0)
    error: Mapped[str | None] = mapped_column(Text)
    warnings: Mapped[list[str]] = mapped_column(JSONType, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ImportRowError(Base):
    """A row an import refused, with the column and the reason (the downloadable error report)."""

    __tablename__ = "import_errors"
    __table_args__ = (Index("ix_import_errors_run", "run_id", "ordinal"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("import_runs.id", ondelete="CASCADE"))
    # Position of the record in the whole file (ZIP entries continue the count); `row` is what a
    # spreadsheet shows inside `entry`.
    ordinal: Mapped[int] = mapped_column(BigInteger)
    row: Mapped[int] = mapped_column(BigInteger)
    entry: Mapped[str | None] = mapped_column(String(255))
    column: Mapped[str | None] = mapped_column(String(255))
    reason: Mapped[str] = mapped_column(Text)


class SyncJob(Base):
    """A scheduled transfer with a file store: import the files matching a pattern, or push an export.

    `secrets` holds the password and private key encrypted (see `sync.credentials`); nothing else
    about the job is secret.
    """

    __tablename__ = "sync_jobs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    direction: Mapped[str] = mapped_column(String(10), default="import")
    kind: Mapped[str] = mapped_column(String(10))
    host: Mapped[str] = mapped_column(String(253), default="")
    port: Mapped[int | None] = mapped_column(Integer)
    username: Mapped[str] = mapped_column(String(200), default="")
    secrets: Mapped[str | None] = mapped_column(Text)
    known_host_key: Mapped[str | None] = mapped_column(Text)
    ca_cert: Mapped[str | None] = mapped_column(Text)
    verify_tls: Mapped[bool] = mapped_column(Boolean, default=True)
    remote_dir: Mapped[str] = mapped_column(String(500), default="")
    pattern: Mapped[str] = mapped_column(String(200), default="*.csv")
    schedule: Mapped[str] = mapped_column(String(100), default="0 2 * * *")
    options: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    disposal: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    next_run_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    running_since: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_run_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_status: Mapped[str | None] = mapped_column(String(20))
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class SyncJobFile(Base):
    """A file a job has dealt with, by name, size and time: the guard against importing it twice."""

    __tablename__ = "sync_job_files"
    __table_args__ = (UniqueConstraint("job_id", "fingerprint"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("sync_jobs.id", ondelete="CASCADE"))
    fingerprint: Mapped[str] = mapped_column(String(500))
    name: Mapped[str] = mapped_column(String(255))
    size: Mapped[int | None] = mapped_column(BigInteger)
    mtime: Mapped[datetime | None] = mapped_column(UTCDateTime)
    run_id: Mapped[int | None] = mapped_column(Integer)
    outcome: Mapped[str] = mapped_column(String(20))
    moved_to: Mapped[str | None] = mapped_column(String(500))
    processed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ExportMark(Base):
    """Where an unsubscriber export stream got to, so "since the last export" has an answer.

    `stream` names the consumer: "job-<id>" for a scheduled job, a caller-chosen name otherwise.
    """

    __tablename__ = "export_marks"
    __table_args__ = (Index("ix_export_marks_stream", "account_id", "stream", "until"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    stream: Mapped[str] = mapped_column(String(100))
    since: Mapped[datetime | None] = mapped_column(UTCDateTime)
    until: Mapped[datetime] = mapped_column(UTCDateTime)
    rows: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class DropLogin(Base):
    """A login to Missiva's own FTP/SFTP drop; files uploaded with it are imported with its options."""

    __tablename__ = "drop_logins"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    username: Mapped[str] = mapped_column(String(100), unique=True)
    password_hash: Mapped[str] = mapped_column(String(200))
    options: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
