"""bulk sync bookkeeping: counts, resync batches, the run that last saw a user

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_COUNTS = ("read", "deleted", "failed")


def upgrade() -> None:
    with op.batch_alter_table("sync_jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("batch_id", sa.String(length=36), nullable=True))
        for name in _COUNTS:
            batch_op.add_column(
                sa.Column(name, sa.Integer(), nullable=False, server_default=sa.text("0"))
            )
        batch_op.create_index("ix_sync_jobs_batch_id", ["batch_id"], unique=False)
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(sa.Column("seen_in_job", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_column("seen_in_job")
    with op.batch_alter_table("sync_jobs", schema=None) as batch_op:
        batch_op.drop_index("ix_sync_jobs_batch_id")
        for name in reversed(_COUNTS):
            batch_op.drop_column(name)
        batch_op.drop_column("batch_id")
