"""scim documents and last-modified times

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(sa.Column("scim_document", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index(
            "ix_users_source_scim_external_id", ["source_id", "scim_external_id"], unique=False
        )
    with op.batch_alter_table("group_members", schema=None) as batch_op:
        batch_op.add_column(sa.Column("display", sa.String(length=255), nullable=True))
    # A record last changed no later than its last status change: the best date there is.
    op.execute("UPDATE users SET updated_at = status_changed_at")
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.alter_column(
            "updated_at", existing_type=sa.DateTime(timezone=True), nullable=False
        )


def downgrade() -> None:
    with op.batch_alter_table("group_members", schema=None) as batch_op:
        batch_op.drop_column("display")
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_index("ix_users_source_scim_external_id")
        batch_op.drop_column("updated_at")
        batch_op.drop_column("scim_document")
