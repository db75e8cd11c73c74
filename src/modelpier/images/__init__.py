"""OCI images built without a Docker daemon: layers, manifests, the distribution API, the builder.

``oci/`` writes and reads the image format (reproducible tar layers, manifests, configs, layouts);
``distribution/`` talks to any OCI registry (token auth, chunked resumable uploads, mounts);
``build.py`` plans an image's layers and config purely; ``builder.py`` does the I/O around it.
Used by ``pier build image`` (cli/build.py). See docs/images.md.
"""
