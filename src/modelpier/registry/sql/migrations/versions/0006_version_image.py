"""The OCI image built from a version: ``versions.image``.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06

Mirrors ``VersionRow.image``: ``pier build image`` records the pushed image by digest
(``REGISTRY/REPO@sha256:…``) on the version it built (docs/images.md). Nullable: versions without an
image, and every version stored before, have none.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("versions") as batch:
        batch.add_column(sa.Column("image", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("versions") as batch:
        batch.drop_column("image")
