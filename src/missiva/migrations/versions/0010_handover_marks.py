"""hand-over marks: which claim took a ledger row, and how far each sender handed its rows to SMTP

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-23 05:10:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("send_ledger") as batch:
        batch.add_column(sa.Column("claim_seq", sa.Integer(), nullable=True))
    with op.batch_alter_table("sender_workers") as batch:
        batch.add_column(sa.Column("handed_seq", sa.Integer(), nullable=True))
        batch.add_column(
            sa.Column("handed_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("sender_workers") as batch:
        batch.drop_column("handed_id")
        batch.drop_column("handed_seq")
    with op.batch_alter_table("send_ledger") as batch:
        batch.drop_column("claim_seq")
