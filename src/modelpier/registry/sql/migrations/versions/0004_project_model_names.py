"""Model names unique per project, not across projects; the auth epoch gateways flush token checks on.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28

Before, ``uq_models_name`` made a name unique across projects, so registering a name another tenant
held answered 409 and revealed that model. Now ``uq_models_project_name`` makes (project, name)
unique. On SQLite this recreates ``models`` (batch mode, copy-and-move); ``migrate.py`` runs the
upgrade with SQLite's foreign keys off so dropping the old table does not cascade into versions,
aliases and tags, and checks every reference afterwards. Rows keep their ids.

``auth_epoch`` is one row holding a counter that grows whenever access shrinks (a token revoked, a
member removed or demoted, a user deleted); the routing table carries it, and a gateway drops its
cached token checks when it changes.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("models") as batch:
        batch.drop_constraint("uq_models_name", type_="unique")
        batch.create_unique_constraint("uq_models_project_name", ["project", "name"])
    epoch = op.create_table(
        "auth_epoch",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("epoch", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_auth_epoch"),
    )
    op.bulk_insert(epoch, [{"id": 1, "epoch": 0}])


def downgrade() -> None:
    op.drop_table("auth_epoch")
    # Fails (unique violation) when two projects hold a model of the same name: rename one first.
    with op.batch_alter_table("models") as batch:
        batch.drop_constraint("uq_models_project_name", type_="unique")
        batch.create_unique_constraint("uq_models_name", ["name"])
