"""``build_registry(settings)``: the registry as configured (SQLite + folder by default)."""

from __future__ import annotations

from modelpier.registry.blobs.factory import open_blob_store
from modelpier.registry.service import Registry
from modelpier.registry.sql.store import SqlMetadataStore
from modelpier.registry.store import DEFAULT_PROJECT
from modelpier.settings import Settings


def build_registry(settings: Settings) -> Registry:
    """Open the metadata store (migrating it to the newest schema) and the blob store."""
    settings.home.mkdir(parents=True, exist_ok=True)
    metadata = SqlMetadataStore.open(settings.resolved_database_url)
    try:
        blobs = open_blob_store(settings.resolved_blob_url, s3_endpoint_url=settings.s3_endpoint_url)
    except BaseException:
        metadata.close()
        raise
    # Calls that name no project (local CLI, SDK, model servers) act in PIER_PROJECT's registry.
    return Registry(metadata, blobs, settings.resolved_cache_dir, project=settings.project or DEFAULT_PROJECT)
