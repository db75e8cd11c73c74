"""Alembic migrations of the registry schema (a package so a wheel installs them)."""
