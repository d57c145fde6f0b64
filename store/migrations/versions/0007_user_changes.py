"""the log of changed bind records, filled by triggers, for in-process bind caches

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-09
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from store.changes import create_triggers_v1, drop_triggers_v1

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "user_changes",
        sa.Column(
            "seq",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("user_id", sa.String(length=36), nullable=False),
        sa.Column("txid", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_user_changes")),
        sqlite_autoincrement=True,
    )
    with op.batch_alter_table("user_changes", schema=None) as batch_op:
        batch_op.create_index("ix_user_changes_txid", ["txid"], unique=False)
    create_triggers_v1(op.get_bind())


def downgrade() -> None:
    drop_triggers_v1(op.get_bind())
    with op.batch_alter_table("user_changes", schema=None) as batch_op:
        batch_op.drop_index("ix_user_changes_txid")
    op.drop_table("user_changes")
