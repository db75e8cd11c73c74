"""``LogSource``: how the control plane reads replica logs, injected by whoever runs the replicas.

It has the shape of ``Backend.logs`` (``backends/base.py``), so the composition root passes
``backend.logs`` as it is: the last ``tail`` lines of each matching replica's log, oldest first,
each prefixed with ``[replica id]``. Without a backend the control plane answers "logs are not
available" (404).
"""

from __future__ import annotations

from typing import Protocol

from modelpier.errors import NotFound

# Lines per replica when the caller does not say; like `kubectl logs --tail`, bounded by default.
DEFAULT_TAIL = 100
MAX_TAIL = 10_000


class LogSource(Protocol):
    def __call__(self, project: str, deployment: str, *, predictor: str | None = None,
                 tail: int = DEFAULT_TAIL) -> list[str]: ...


def no_logs(project: str, deployment: str, *, predictor: str | None = None, tail: int = DEFAULT_TAIL) -> list[str]:
    """The default ``LogSource``: this control plane runs no replicas it could read logs from."""
    raise NotFound(f"logs are not available for {project}/{deployment}: this control plane has no backend "
                   "that keeps replica logs (run `pier up` for the local backend)")
