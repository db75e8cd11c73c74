"""Adaptive batching: a pure flush policy (``policy.py``) and the queue that applies it (``queue.py``)."""
