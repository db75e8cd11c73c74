"""Bundled examples that ``pier up`` uses, so a fresh install has something to look at."""
