"""inbound: log of processed bounces/complaints/unsubscribe mails, provider webhooks, mailing counters

Revision ID: 0006
Revises: 0004
Create Date: 2026-11-23 01:40:00.000000
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import missiva.db

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "inbound_messages",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=True),
        sa.Column("mailing_id", sa.Integer(), nullable=True),
        sa.Column("recipient_id", BIG_ID, nullable=True),
        sa.Column("kind", sa.String(length=12), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=True),
        sa.Column("address", sa.String(length=254), nullable=True),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("diagnostic", sa.String(length=300), nullable=False),
        sa.Column("received_at", missiva.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_inbound_messages_account_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_inbound_messages")),
        sa.UniqueConstraint("fingerprint", name=op.f("uq_inbound_messages_fingerprint")),
    )
    op.create_index(
        "ix_inbound_messages_soft", "inbound_messages", ["account_id", "address", "kind", "received_at"]
    )
    op.create_index("ix_inbound_messages_mailing", "inbound_messages", ["mailing_id", "recipient_id", "kind"])
    op.create_table(
        "inbound_webhooks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("provider", sa.String(length=16), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("options", JSON, nullable=False),
        sa.Column("created_at", missiva.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_inbound_webhooks_account_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_inbound_webhooks")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_inbound_webhooks_token_hash")),
    )
    op.create_index(op.f("ix_inbound_webhooks_account_id"), "inbound_webhooks", ["account_id"])
    with op.batch_alter_table("mailings") as batch:
        batch.add_column(sa.Column("soft_bounced", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("complaints", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("mailings") as batch:
        batch.drop_column("complaints")
        batch.drop_column("soft_bounced")
    op.drop_index(op.f("ix_inbound_webhooks_account_id"), table_name="inbound_webhooks")
    op.drop_table("inbound_webhooks")
    op.drop_index("ix_inbound_messages_mailing", table_name="inbound_messages")
    op.drop_index("ix_inbound_messages_soft", table_name="inbound_messages")
    op.drop_table("inbound_messages")
