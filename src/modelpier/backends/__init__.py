"""Backends run replicas: ``local`` as child processes, ``kubernetes`` as pods, driven by the same reconciler."""
