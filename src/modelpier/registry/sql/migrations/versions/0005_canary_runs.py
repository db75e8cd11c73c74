"""Progressive canaries survive a control-plane restart: ``canary_runs``.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-05

Mirrors ``CanaryRunRow`` in ``modelpier/control/store/tables.py``, written out by hand in the style
of 0002. One row per canary run, written at every transition of the drive, so a restarted control
plane resumes the runs that are not done (docs/canary.md). Runs go with their deployment.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "canary_runs",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("deployment_id", sa.Integer(), nullable=False),
        sa.Column("predictor", sa.String(length=63), nullable=False),
        sa.Column("stable", sa.String(length=63), nullable=False),
        sa.Column("target", sa.String(length=128), nullable=False),
        sa.Column("version", sa.String(length=128), nullable=False),
        sa.Column("stable_version", sa.String(length=128), nullable=False),
        sa.Column("steps", sa.JSON(), nullable=False),
        sa.Column("interval_ms", sa.Integer(), nullable=False),
        sa.Column("started_by", sa.String(length=255), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("phase", sa.String(length=16), nullable=False),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("weight", sa.Integer(), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("results", sa.JSON(), nullable=False),
        sa.Column("abort_by", sa.String(length=255), nullable=True),
        sa.Column("pending", sa.JSON(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["deployment_id"], ["deployments.id"],
                                name="fk_canary_runs_deployment_id_deployments", ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name="pk_canary_runs"),
    )
    # The newest run of a deployment is read by id, and older ones are pruned by id.
    op.create_index("ix_canary_runs_deployment_id_id", "canary_runs", ["deployment_id", "id"])


def downgrade() -> None:
    op.drop_index("ix_canary_runs_deployment_id_id", table_name="canary_runs")
    op.drop_table("canary_runs")
