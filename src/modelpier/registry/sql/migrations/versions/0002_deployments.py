"""Control-plane schema: projects, deployments, their revisions and events; the ``default`` project.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21

Mirrors ``modelpier/control/store/tables.py``, written out by hand in the style of 0001: plain
column types, constraint names from the naming convention spelled out. The control plane keeps its
tables in the registry's database so one chain of migrations versions the whole schema.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _timestamp(name: str) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=False)


def upgrade() -> None:
    projects = op.create_table(
        "projects",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=63), nullable=False),
        _timestamp("created_at"),
        sa.PrimaryKeyConstraint("id", name="pk_projects"),
        sa.UniqueConstraint("name", name="uq_projects_name"),
    )
    op.create_table(
        "deployments",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=63), nullable=False),
        sa.Column("latest_revision", sa.Integer(), nullable=False),
        sa.Column("serving_revision", sa.Integer(), nullable=True),
        sa.Column("status", sa.JSON(), nullable=False),
        sa.Column("deleting", sa.Boolean(), server_default=sa.false(), nullable=False),
        _timestamp("created_at"),
        _timestamp("updated_at"),
        sa.ForeignKeyConstraint(["project_id"], ["projects.id"], name="fk_deployments_project_id_projects"),
        sa.PrimaryKeyConstraint("id", name="pk_deployments"),
        sa.UniqueConstraint("project_id", "name", name="uq_deployments_project_id_name"),
    )
    op.create_table(
        "revisions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("deployment_id", sa.Integer(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.Column("resolved", sa.JSON(), nullable=False),
        _timestamp("created_at"),
        sa.Column("created_by", sa.String(length=255), nullable=False),
        sa.Column("cause", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["deployment_id"], ["deployments.id"],
                                name="fk_revisions_deployment_id_deployments", ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name="pk_revisions"),
        sa.UniqueConstraint("deployment_id", "number", name="uq_revisions_deployment_id_number"),
    )
    op.create_table(
        "events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("deployment_id", sa.Integer(), nullable=False),
        _timestamp("time"),
        sa.Column("type", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=128), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(["deployment_id"], ["deployments.id"],
                                name="fk_events_deployment_id_deployments", ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name="pk_events"),
    )
    # Events are read newest-first per deployment and pruned to the newest few hundred by id.
    op.create_index("ix_events_deployment_id_id", "events", ["deployment_id", "id"])
    # Deployments land in "default" when no project is named, so it exists from the start.
    op.bulk_insert(projects, [{"name": "default", "created_at": datetime.now(UTC)}])


def downgrade() -> None:
    op.drop_index("ix_events_deployment_id_id", table_name="events")
    op.drop_table("events")
    op.drop_table("revisions")
    op.drop_table("deployments")
    op.drop_table("projects")
