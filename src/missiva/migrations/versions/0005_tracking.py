"""tracking: tracked mailings and links, tracking events, counters, first-seen rows, preferences

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23 01:17:09.993307
"""

import sqlalchemy as sa
from alembic import op

import missiva.db

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "tracked_links",
        sa.Column("mailing_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("link", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("mailing_id", "link", name=op.f("pk_tracked_links")),
    )
    op.create_table(
        "tracking_counters",
        sa.Column("mailing_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("metric", sa.String(length=32), nullable=False),
        sa.Column("key", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("value", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("mailing_id", "metric", "key", name=op.f("pk_tracking_counters")),
    )
    op.create_table(
        "tracking_events",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("mailing_id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("recipient_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("kind", sa.String(length=5), nullable=False),
        sa.Column("link", sa.Integer(), nullable=True),
        sa.Column("occurred_at", missiva.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("ua_class", sa.String(length=12), nullable=False),
        sa.Column("is_bot", sa.Boolean(), nullable=False),
        sa.Column("is_proxy", sa.Boolean(), nullable=False),
        sa.Column("counted", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tracking_events")),
    )
    with op.batch_alter_table("tracking_events", schema=None) as batch_op:
        batch_op.create_index("ix_tracking_events_mailing", ["mailing_id", "id"], unique=False)
        batch_op.create_index(
            "ix_tracking_events_pending",
            ["id"],
            unique=False,
            postgresql_where=sa.text("NOT counted"),
            sqlite_where=sa.text("NOT counted"),
        )
        batch_op.create_index("ix_tracking_events_recipient", ["recipient_id", "mailing_id"], unique=False)

    op.create_table(
        "tracking_firsts",
        sa.Column("mailing_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column(
            "recipient_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=False,
            nullable=False,
        ),
        sa.Column("kind", sa.String(length=5), nullable=False),
        sa.Column("link", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("at", missiva.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint(
            "mailing_id", "recipient_id", "kind", "link", name=op.f("pk_tracking_firsts")
        ),
    )
    op.create_table(
        "tracked_mailings",
        sa.Column("mailing_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("track_opens", sa.Boolean(), nullable=False),
        sa.Column("track_clicks", sa.Boolean(), nullable=False),
        sa.Column("privacy_mode", sa.Boolean(), nullable=False),
        sa.Column("prepared", sa.Boolean(), nullable=False),
        sa.Column("started_at", missiva.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_tracked_mailings_account_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("mailing_id", name=op.f("pk_tracked_mailings")),
    )
    with op.batch_alter_table("tracked_mailings", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_tracked_mailings_account_id"), ["account_id"], unique=False)

    op.create_table(
        "tracking_preferences",
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("privacy_mode", sa.Boolean(), nullable=False),
        sa.Column("track_opens", sa.Boolean(), nullable=False),
        sa.Column("track_clicks", sa.Boolean(), nullable=False),
        sa.Column("updated_at", missiva.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_tracking_preferences_account_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("account_id", name=op.f("pk_tracking_preferences")),
    )


def downgrade() -> None:
    op.drop_table("tracking_preferences")
    with op.batch_alter_table("tracked_mailings", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_tracked_mailings_account_id"))

    op.drop_table("tracked_mailings")
    op.drop_table("tracking_firsts")
    with op.batch_alter_table("tracking_events", schema=None) as batch_op:
        batch_op.drop_index("ix_tracking_events_recipient")
        batch_op.drop_index(
            "ix_tracking_events_pending",
            postgresql_where=sa.text("NOT counted"),
            sqlite_where=sa.text("NOT counted"),
        )
        batch_op.drop_index("ix_tracking_events_mailing")

    op.drop_table("tracking_events")
    op.drop_table("tracking_counters")
    op.drop_table("tracked_links")
