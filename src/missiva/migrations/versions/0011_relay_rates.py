"""relay rates: each rated relay's shared send schedule (next free slot), reserved by every sender

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-23 06:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "relay_rates",
        sa.Column("relay_key", sa.String(length=255), nullable=False),
        sa.Column("next_slot_us", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.PrimaryKeyConstraint("relay_key"),
    )


def downgrade() -> None:
    op.drop_table("relay_rates")
