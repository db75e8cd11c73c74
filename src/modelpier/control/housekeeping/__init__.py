"""Loops the control plane runs beside its API: expiring abandoned uploads and collecting blobs no
version references."""
