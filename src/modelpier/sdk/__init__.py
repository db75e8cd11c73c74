"""The Python SDK: save, load and import models (registry functions in ``api.py``)."""
