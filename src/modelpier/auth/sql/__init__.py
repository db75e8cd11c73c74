"""The auth tables and their store, in the registry's database and its one migration chain (0003)."""

from modelpier.auth.sql.store import SqlAuthStore

__all__ = ["SqlAuthStore"]
