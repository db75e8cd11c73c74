"""Backends run replicas: ``local`` as child processes, ``kubernetes`` through the operator."""
