"""The OCI image format: reproducible tar layers (``tar``), descriptors, manifests and layouts (``layout``)."""
