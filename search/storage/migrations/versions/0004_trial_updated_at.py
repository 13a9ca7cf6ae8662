"""Trials carry ``updated_at`` (stamped by every write), so readers can ask what changed since a time.

Existing trials get their latest known timestamp (finished, heartbeat, started, created).

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"


def upgrade() -> None:
    with op.batch_alter_table("trials") as batch:
        batch.add_column(sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True))
    op.execute("UPDATE trials SET updated_at = COALESCE(finished_at, heartbeat_at, started_at, created_at)")
    with op.batch_alter_table("trials") as batch:
        batch.alter_column("updated_at", existing_type=sa.DateTime(timezone=True), nullable=False)
    op.create_index("ix_trials_sweep_updated", "trials", ["sweep_id", "updated_at"])


def downgrade() -> None:
    op.drop_index("ix_trials_sweep_updated", "trials")
    with op.batch_alter_table("trials") as batch:
        batch.drop_column("updated_at")
