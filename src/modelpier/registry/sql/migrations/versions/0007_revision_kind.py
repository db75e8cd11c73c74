"""Why a revision exists, typed: ``revisions.kind``.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06

Mirrors ``RevisionRow.kind`` (a ``spec.revision.RevisionKind`` value). Until now the kind was guessed
from the free-text ``cause`` wherever it mattered (is this a rollback? a canary's step?), with
different tests in different places. The column is added, every existing row is classified once,
here, from the causes the control plane wrote so far, and then the column becomes NOT NULL.

The classification is frozen in this file on purpose: it describes the text old versions wrote and
must not change when today's code changes how it words a cause.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

KIND_LEN = 32
_BATCH = 500

# The causes control planes up to 0006 wrote, by writer (control/deployments/service.py, control/canary/driver.py,
# control/reconciler/loop.py), tried in this order.
_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("applied", re.compile(r"^applied$")),
    ("rollback", re.compile(r"^rollback to revision \d+$")),
    ("auto-rollback", re.compile(r"^automatic rollback\b")),
    ("alias-follow", re.compile(r"^alias \S+ moved from \S+ to \S+")),
    ("canary-step", re.compile(r"^canary \S+ at \d+%$")),
    ("canary-promote", re.compile(r"^canary \S+ promoted$")),
    ("canary-rollback", re.compile(r"^canary \S+ rolled back\b")),
)
# What the old readers counted as a rollback (control/deployments/history.py), for a cause none of the above matches:
# it kept pinning versions then, so it keeps doing so.
_LOOSE_ROLLBACK = re.compile(r"\broll(?:ed)?[ -]?back\b", re.IGNORECASE)


def classify(cause: str) -> str:
    """The kind of a revision written before 0007, from its cause."""
    for kind, pattern in _PATTERNS:
        if pattern.search(cause):
            return kind
    return "rollback" if _LOOSE_ROLLBACK.search(cause) else "applied"


def upgrade() -> None:
    with op.batch_alter_table("revisions") as batch:
        batch.add_column(sa.Column("kind", sa.String(length=KIND_LEN), nullable=True))
    revisions = sa.table("revisions", sa.column("id", sa.Integer()), sa.column("cause", sa.Text()),
                         sa.column("kind", sa.String(length=KIND_LEN)))
    conn = op.get_bind()
    by_kind: dict[str, list[int]] = {}
    for row_id, cause in conn.execute(sa.select(revisions.c.id, revisions.c.cause)):
        by_kind.setdefault(classify(cause), []).append(row_id)
    for kind, ids in sorted(by_kind.items()):
        for start in range(0, len(ids), _BATCH):
            conn.execute(sa.update(revisions).where(revisions.c.id.in_(ids[start:start + _BATCH]))
                         .values(kind=kind))
    with op.batch_alter_table("revisions") as batch:
        batch.alter_column("kind", existing_type=sa.String(length=KIND_LEN), nullable=False)


def downgrade() -> None:
    with op.batch_alter_table("revisions") as batch:
        batch.drop_column("kind")
