"""The OCI distribution API: image references, registry authentication, and the HTTP client."""
