"""The registry's metadata in SQL: SQLAlchemy mappings, engines, migrations, ``SqlMetadataStore``.

Only this package imports SQLAlchemy and Alembic; everything else sees the ``MetadataStore``
protocol and frozen domain objects. Open a store with ``SqlMetadataStore.open(url)``, which applies
the migrations first.
"""

from modelpier.registry.sql.engine import open_engine
from modelpier.registry.sql.migrate import current_revision, head_revision, upgrade_to_head
from modelpier.registry.sql.store import SqlMetadataStore

__all__ = ["SqlMetadataStore", "current_revision", "head_revision", "open_engine", "upgrade_to_head"]
