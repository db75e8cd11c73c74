"""The model registry: named, versioned model artifacts with metadata.

Metadata lives behind ``MetadataStore`` (SQLAlchemy inside ``registry/sql``), bytes behind
``BlobStore`` (a local folder or S3 inside ``registry/blobs``); ``Registry`` in ``service.py``
combines them, and ``RegistryClient`` in ``remote.py`` talks to a remote control plane.
"""
