"""Runtimes: one small class per model flavor that loads an artifact and predicts on a batch.

Framework imports (sklearn, xgboost, onnxruntime, torch...) happen inside each runtime module, so
the core package installs without them. ``load_runtime`` in ``loader.py`` picks the class by flavor.
"""
