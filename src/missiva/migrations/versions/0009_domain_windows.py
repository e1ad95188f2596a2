"""domain windows: per-destination-domain counts of a mailing's current minute, shared by its senders

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-23 04:40:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "send_domain_windows",
        sa.Column("mailing_id", sa.Integer(), nullable=False),
        sa.Column("domain", sa.String(length=255), nullable=False),
        sa.Column("window_start", sa.Integer(), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["mailing_id"], ["mailings.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("mailing_id", "domain"),
    )


def downgrade() -> None:
    op.drop_table("send_domain_windows")
