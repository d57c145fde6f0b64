"""the mass-disable guard: held runs, their reason, and the users they hold

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("sync_jobs", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("held", sa.Integer(), nullable=False, server_default=sa.text("0"))
        )
        batch_op.add_column(sa.Column("held_reason", sa.Text(), nullable=True))
    op.create_table(
        "job_holds",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.String(length=36), nullable=False),
        sa.Column("external_id", sa.String(length=255), nullable=False),
        sa.Column("user_name", sa.String(length=255), nullable=False),
        sa.Column("source_status", sa.String(length=16), nullable=False),
        sa.ForeignKeyConstraint(
            ["job_id"],
            ["sync_jobs.id"],
            name=op.f("fk_job_holds_job_id_sync_jobs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_job_holds")),
    )
    with op.batch_alter_table("job_holds", schema=None) as batch_op:
        batch_op.create_index("ix_job_holds_job", ["job_id", "id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("job_holds", schema=None) as batch_op:
        batch_op.drop_index("ix_job_holds_job")
    op.drop_table("job_holds")
    with op.batch_alter_table("sync_jobs", schema=None) as batch_op:
        batch_op.drop_column("held_reason")
        batch_op.drop_column("held")
