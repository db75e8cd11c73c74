"""The typed nouns every part shares: model names and references, tensor signatures.

This is the single source of truth for shapes that cross part boundaries; the ModelDeployment spec
joins it here later. Pure data and validation, no I/O.
"""
