"""ASHA rungs: the point each trial recorded at each rung it reached, so any executor's trials (and a
resumed sweep) compare against the same rung records. Sweep sessions: how many times a driver has started
on the sweep, so each session's strategy draws its own stream.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"


def upgrade() -> None:
    with op.batch_alter_table("sweeps") as batch:
        batch.add_column(sa.Column("sessions", sa.Integer, nullable=False, server_default="0"))
    op.create_table(
        "trial_rungs",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("sweep_id", sa.Integer, sa.ForeignKey("sweeps.id", ondelete="CASCADE"), nullable=False),
        sa.Column("trial_id", sa.Integer, sa.ForeignKey("trials.id", ondelete="CASCADE"), nullable=False),
        sa.Column("bracket", sa.Integer, nullable=False),
        sa.Column("milestone", sa.Integer, nullable=False),
        sa.Column("point", sa.JSON, nullable=False),
        sa.UniqueConstraint("trial_id", "milestone", name="uq_trial_rungs"),
    )
    op.create_index("ix_trial_rungs_rung", "trial_rungs", ["sweep_id", "bracket", "milestone"])


def downgrade() -> None:
    with op.batch_alter_table("sweeps") as batch:
        batch.drop_column("sessions")
    op.drop_index("ix_trial_rungs_rung", "trial_rungs")
    op.drop_table("trial_rungs")
