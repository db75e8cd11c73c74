"""The model registry: named, versioned model artifacts with metadata.

Metadata lives behind ``MetadataStore`` (SQLAlchemy inside ``registry/sql``), bytes behind
``BlobStore`` (a local folder or S3 inside ``registry/blobs``); ``Registry`` in ``service.py``
combines them. A remote control plane's registry is reached through the API client
(``sdk/control_api``: ``models.py``, ``blobs.py``, and push/pull in ``transfer.py``).
"""
