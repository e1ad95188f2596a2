"""sending: messages, mailings, send ledger, suppression list, sender workers

Revision ID: 0004
Revises: 0001
Create Date: 2026-11-23 00:54:32.627886
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import missiva.db

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sender_workers",
        sa.Column("id", sa.String(length=80), nullable=False),
        sa.Column("host", sa.String(length=255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("started_at", missiva.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("heartbeat_at", missiva.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sender_workers")),
    )
    op.create_table(
        "suppressions",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("channel", sa.String(length=5), nullable=False),
        sa.Column("address", sa.String(length=254), nullable=False),
        sa.Column("reason", sa.String(length=20), nullable=False),
        sa.Column("source", sa.String(length=20), nullable=False),
        sa.Column("mailing_id", sa.Integer(), nullable=True),
        sa.Column("note", sa.String(length=500), nullable=True),
        sa.Column("created_at", missiva.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_suppressions_account_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_suppressions")),
        sa.UniqueConstraint(
            "account_id", "channel", "address", name=op.f("uq_suppressions_account_id_channel_address")
        ),
    )
    op.create_table(
        "messages",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("list_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("subject", sa.String(length=998), nullable=False),
        sa.Column("html", sa.Text(), nullable=True),
        sa.Column("text", sa.Text(), nullable=True),
        sa.Column("from_name", sa.String(length=200), nullable=False),
        sa.Column("from_email", sa.String(length=254), nullable=False),
        sa.Column("reply_to", sa.String(length=254), nullable=True),
        sa.Column("preheader", sa.String(length=500), nullable=True),
        sa.Column("mode", sa.String(length=10), nullable=False),
        sa.Column(
            "attachments",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("created_at", missiva.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", missiva.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_messages_account_id_accounts"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["list_id"], ["lists.id"], name=op.f("fk_messages_list_id_lists"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_messages")),
    )
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_messages_account_id"), ["account_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_messages_list_id"), ["list_id"], unique=False)

    op.create_table(
        "mailings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("list_id", sa.Integer(), nullable=True),
        sa.Column("message_id", sa.Integer(), nullable=True),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("channel", sa.String(length=5), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column(
            "audience",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "content",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column("scheduled_at", missiva.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("per_minute", sa.Integer(), nullable=True),
        sa.Column("per_hour", sa.Integer(), nullable=True),
        sa.Column("per_domain_per_minute", sa.Integer(), nullable=True),
        sa.Column(
            "throttle_state",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("resolved", sa.Boolean(), nullable=False),
        sa.Column("resolved_upto", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("audience_size", sa.Integer(), nullable=False),
        sa.Column("queued", sa.Integer(), nullable=False),
        sa.Column("sent", sa.Integer(), nullable=False),
        sa.Column("deferred", sa.Integer(), nullable=False),
        sa.Column("hard_bounced", sa.Integer(), nullable=False),
        sa.Column("failed", sa.Integer(), nullable=False),
        sa.Column("uncertain", sa.Integer(), nullable=False),
        sa.Column("suppressed", sa.Integer(), nullable=False),
        sa.Column("cancelled_count", sa.Integer(), nullable=False),
        sa.Column(
            "suppressed_by_reason",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("created_at", missiva.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", missiva.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("started_at", missiva.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("finished_at", missiva.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_mailings_account_id_accounts"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["list_id"], ["lists.id"], name=op.f("fk_mailings_list_id_lists"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["message_id"], ["messages.id"], name=op.f("fk_mailings_message_id_messages"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mailings")),
    )
    with op.batch_alter_table("mailings", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_mailings_account_id"), ["account_id"], unique=False)
        batch_op.create_index("ix_mailings_status_scheduled", ["status", "scheduled_at"], unique=False)

    op.create_table(
        "send_ledger",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("mailing_id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("recipient_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("channel", sa.String(length=5), nullable=False),
        sa.Column("address", sa.String(length=254), nullable=True),
        sa.Column("state", sa.String(length=12), nullable=False),
        sa.Column("reason", sa.String(length=20), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", missiva.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("claimed_by", sa.String(length=80), nullable=True),
        sa.Column("reply_code", sa.Integer(), nullable=True),
        sa.Column("reply_status", sa.String(length=12), nullable=True),
        sa.Column("reply_text", sa.Text(), nullable=True),
        sa.Column("message_ref", sa.String(length=255), nullable=True),
        sa.Column("updated_at", missiva.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("sent_at", missiva.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["mailing_id"],
            ["mailings.id"],
            name=op.f("fk_send_ledger_mailing_id_mailings"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_send_ledger")),
        sa.UniqueConstraint(
            "mailing_id",
            "recipient_id",
            "channel",
            name=op.f("uq_send_ledger_mailing_id_recipient_id_channel"),
        ),
    )
    with op.batch_alter_table("send_ledger", schema=None) as batch_op:
        batch_op.create_index("ix_send_ledger_claim", ["mailing_id", "state", "id"], unique=False)
        batch_op.create_index("ix_send_ledger_recipient", ["recipient_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("send_ledger", schema=None) as batch_op:
        batch_op.drop_index("ix_send_ledger_recipient")
        batch_op.drop_index("ix_send_ledger_claim")

    op.drop_table("send_ledger")
    with op.batch_alter_table("mailings", schema=None) as batch_op:
        batch_op.drop_index("ix_mailings_status_scheduled")
        batch_op.drop_index(batch_op.f("ix_mailings_account_id"))

    op.drop_table("mailings")
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_messages_list_id"))
        batch_op.drop_index(batch_op.f("ix_messages_account_id"))

    op.drop_table("messages")
    op.drop_table("suppressions")
    op.drop_table("sender_workers")
