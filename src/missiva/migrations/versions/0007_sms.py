"""sms: SMS messages and mailings, transports, submitted parts, receipts inbox, inbound log

Revision ID: 0007
Revises: 0004
Create Date: 2026-11-23 01:25:50.473232
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import missiva.db

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sms_inbound",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(length=20), nullable=False),
        sa.Column("dest", sa.String(length=20), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("transport", sa.String(length=40), nullable=False),
        sa.Column("recipient_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column(
            "unsubscribed_lists",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("received_at", missiva.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_sms_inbound_account_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sms_inbound")),
    )
    with op.batch_alter_table("sms_inbound", schema=None) as batch_op:
        batch_op.create_index("ix_sms_inbound_account", ["account_id", "id"], unique=False)

    op.create_table(
        "sms_receipts",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("transport", sa.String(length=40), nullable=False),
        sa.Column("smsc_id", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("raw_status", sa.String(length=16), nullable=False),
        sa.Column("err", sa.String(length=32), nullable=True),
        sa.Column("recipient", sa.String(length=20), nullable=False),
        sa.Column("received_at", missiva.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("applied_at", missiva.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_sms_receipts_account_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sms_receipts")),
    )
    with op.batch_alter_table("sms_receipts", schema=None) as batch_op:
        batch_op.create_index("ix_sms_receipts_pending", ["account_id", "applied_at"], unique=False)

    op.create_table(
        "sms_settings",
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("sender_id", sa.String(length=16), nullable=True),
        sa.Column("opt_out_text", sa.String(length=160), nullable=True),
        sa.Column(
            "stop_keywords",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column("inbound_token_hash", sa.String(length=64), nullable=True),
        sa.Column("updated_at", missiva.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_sms_settings_account_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("account_id", name=op.f("pk_sms_settings")),
        sa.UniqueConstraint("inbound_token_hash", name=op.f("uq_sms_settings_inbound_token_hash")),
    )
    op.create_table(
        "sms_transports",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=40), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("weight", sa.Float(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column(
            "settings",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("secret", sa.Text(), nullable=True),
        sa.Column("created_at", missiva.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", missiva.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_sms_transports_account_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sms_transports")),
        sa.UniqueConstraint("account_id", "name", name=op.f("uq_sms_transports_account_id_name")),
    )
    with op.batch_alter_table("sms_transports", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_sms_transports_account_id"), ["account_id"], unique=False)

    op.create_table(
        "sms_list_settings",
        sa.Column("list_id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("sender_id", sa.String(length=16), nullable=True),
        sa.Column("opt_out_text", sa.String(length=160), nullable=True),
        sa.Column("updated_at", missiva.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_sms_list_settings_account_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["list_id"], ["lists.id"], name=op.f("fk_sms_list_settings_list_id_lists"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("list_id", name=op.f("pk_sms_list_settings")),
    )
    with op.batch_alter_table("sms_list_settings", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_sms_list_settings_account_id"), ["account_id"], unique=False)

    op.create_table(
        "sms_parts",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("mailing_id", sa.Integer(), nullable=False),
        sa.Column("ledger_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("part", sa.Integer(), nullable=False),
        sa.Column("transport", sa.String(length=40), nullable=False),
        sa.Column("smsc_id", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=True),
        sa.Column("updated_at", missiva.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["mailing_id"], ["mailings.id"], name=op.f("fk_sms_parts_mailing_id_mailings"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sms_parts")),
    )
    with op.batch_alter_table("sms_parts", schema=None) as batch_op:
        batch_op.create_index("ix_sms_parts_ledger", ["ledger_id"], unique=False)
        batch_op.create_index("ix_sms_parts_smsc_id", ["account_id", "smsc_id"], unique=False)

    with op.batch_alter_table("mailings", schema=None) as batch_op:
        batch_op.add_column(sa.Column("segments", sa.Integer(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("delivered", sa.Integer(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("expired", sa.Integer(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("undeliverable", sa.Integer(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("rejected", sa.Integer(), nullable=False, server_default="0"))

    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.add_column(sa.Column("channel", sa.String(length=5), nullable=False, server_default="email"))
        batch_op.add_column(sa.Column("sender_id", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("opt_out", sa.Boolean(), nullable=False, server_default=sa.false()))

    with op.batch_alter_table("send_ledger", schema=None) as batch_op:
        batch_op.add_column(sa.Column("delivery", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("delivered_at", missiva.db.UTCDateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("send_ledger", schema=None) as batch_op:
        batch_op.drop_column("delivered_at")
        batch_op.drop_column("delivery")

    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_column("opt_out")
        batch_op.drop_column("sender_id")
        batch_op.drop_column("channel")

    with op.batch_alter_table("mailings", schema=None) as batch_op:
        batch_op.drop_column("rejected")
        batch_op.drop_column("undeliverable")
        batch_op.drop_column("expired")
        batch_op.drop_column("delivered")
        batch_op.drop_column("segments")

    with op.batch_alter_table("sms_parts", schema=None) as batch_op:
        batch_op.drop_index("ix_sms_parts_smsc_id")
        batch_op.drop_index("ix_sms_parts_ledger")

    op.drop_table("sms_parts")
    with op.batch_alter_table("sms_list_settings", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sms_list_settings_account_id"))

    op.drop_table("sms_list_settings")
    with op.batch_alter_table("sms_transports", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sms_transports_account_id"))

    op.drop_table("sms_transports")
    op.drop_table("sms_settings")
    with op.batch_alter_table("sms_receipts", schema=None) as batch_op:
        batch_op.drop_index("ix_sms_receipts_pending")

    op.drop_table("sms_receipts")
    with op.batch_alter_table("sms_inbound", schema=None) as batch_op:
        batch_op.drop_index("ix_sms_inbound_account")

    op.drop_table("sms_inbound")
