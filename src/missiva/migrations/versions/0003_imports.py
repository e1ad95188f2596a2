"""imports: import runs and row errors, sync jobs and their files, export marks, drop logins

Revision ID: 0003
Revises: 0001
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import missiva.db

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "drop_logins",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("username", sa.String(length=100), nullable=False),
        sa.Column("password_hash", sa.String(length=200), nullable=False),
        sa.Column(
            "options",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("created_at", missiva.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_drop_logins_account_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_drop_logins")),
        sa.UniqueConstraint("username", name=op.f("uq_drop_logins_username")),
    )
    with op.batch_alter_table("drop_logins", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_drop_logins_account_id"), ["account_id"], unique=False)

    op.create_table(
        "export_marks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("stream", sa.String(length=100), nullable=False),
        sa.Column("since", missiva.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("until", missiva.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("rows", sa.BigInteger(), nullable=False),
        sa.Column("created_at", missiva.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_export_marks_account_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_export_marks")),
    )
    with op.batch_alter_table("export_marks", schema=None) as batch_op:
        batch_op.create_index("ix_export_marks_stream", ["account_id", "stream", "until"], unique=False)

    op.create_table(
        "import_runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("source", sa.String(length=10), nullable=False),
        sa.Column("source_ref", sa.String(length=500), nullable=True),
        sa.Column("sync_job_id", sa.Integer(), nullable=True),
        sa.Column("filename", sa.String(length=255), nullable=False),
        sa.Column("path", sa.Text(), nullable=True),
        sa.Column("size", sa.BigInteger(), nullable=True),
        sa.Column("sha256", sa.String(length=64), nullable=True),
        sa.Column("list_id", sa.Integer(), nullable=True),
        sa.Column(
            "options",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("checkpoint", sa.BigInteger(), nullable=False),
        sa.Column("rows_total", sa.BigInteger(), nullable=False),
        sa.Column("rows_new", sa.BigInteger(), nullable=False),
        sa.Column("rows_updated", sa.BigInteger(), nullable=False),
        sa.Column("rows_unchanged", sa.BigInteger(), nullable=False),
        sa.Column("rows_unsubscribed", sa.BigInteger(), nullable=False),
        sa.Column("rows_skipped", sa.BigInteger(), nullable=False),
        sa.Column("rows_errors", sa.BigInteger(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column(
            "warnings",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("created_at", missiva.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("started_at", missiva.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("finished_at", missiva.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("updated_at", missiva.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_import_runs_account_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_import_runs")),
    )
    with op.batch_alter_table("import_runs", schema=None) as batch_op:
        batch_op.create_index("ix_import_runs_account_status", ["account_id", "status"], unique=False)

    op.create_table(
        "sync_jobs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("direction", sa.String(length=10), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("host", sa.String(length=253), nullable=False),
        sa.Column("port", sa.Integer(), nullable=True),
        sa.Column("username", sa.String(length=200), nullable=False),
        sa.Column("secrets", sa.Text(), nullable=True),
        sa.Column("known_host_key", sa.Text(), nullable=True),
        sa.Column("ca_cert", sa.Text(), nullable=True),
        sa.Column("verify_tls", sa.Boolean(), nullable=False),
        sa.Column("remote_dir", sa.String(length=500), nullable=False),
        sa.Column("pattern", sa.String(length=200), nullable=False),
        sa.Column("schedule", sa.String(length=100), nullable=False),
        sa.Column(
            "options",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "disposal",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("next_run_at", missiva.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("running_since", missiva.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_run_at", missiva.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_status", sa.String(length=20), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", missiva.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", missiva.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_sync_jobs_account_id_accounts"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sync_jobs")),
    )
    with op.batch_alter_table("sync_jobs", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_sync_jobs_account_id"), ["account_id"], unique=False)

    op.create_table(
        "import_errors",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("ordinal", sa.BigInteger(), nullable=False),
        sa.Column("row", sa.BigInteger(), nullable=False),
        sa.Column("entry", sa.String(length=255), nullable=True),
        sa.Column("column", sa.String(length=255), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["import_runs.id"],
            name=op.f("fk_import_errors_run_id_import_runs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_import_errors")),
    )
    with op.batch_alter_table("import_errors", schema=None) as batch_op:
        batch_op.create_index("ix_import_errors_run", ["run_id", "ordinal"], unique=False)

    op.create_table(
        "sync_job_files",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=False),
        sa.Column("fingerprint", sa.String(length=500), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=True),
        sa.Column("mtime", missiva.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("run_id", sa.Integer(), nullable=True),
        sa.Column("outcome", sa.String(length=20), nullable=False),
        sa.Column("moved_to", sa.String(length=500), nullable=True),
        sa.Column("processed_at", missiva.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["job_id"], ["sync_jobs.id"], name=op.f("fk_sync_job_files_job_id_sync_jobs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sync_job_files")),
        sa.UniqueConstraint("job_id", "fingerprint", name=op.f("uq_sync_job_files_job_id_fingerprint")),
    )


def downgrade() -> None:
    op.drop_table("sync_job_files")
    with op.batch_alter_table("import_errors", schema=None) as batch_op:
        batch_op.drop_index("ix_import_errors_run")

    op.drop_table("import_errors")
    with op.batch_alter_table("sync_jobs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sync_jobs_account_id"))

    op.drop_table("sync_jobs")
    with op.batch_alter_table("import_runs", schema=None) as batch_op:
        batch_op.drop_index("ix_import_runs_account_status")

    op.drop_table("import_runs")
    with op.batch_alter_table("export_marks", schema=None) as batch_op:
        batch_op.drop_index("ix_export_marks_stream")

    op.drop_table("export_marks")
    with op.batch_alter_table("drop_logins", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_drop_logins_account_id"))

    op.drop_table("drop_logins")
