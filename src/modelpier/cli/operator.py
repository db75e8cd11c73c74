"""``pier operator``: gone. Kept as a command only to say where its work went.

The separate kopf operator rendered manifests itself and dropped half the spec. The control plane
now runs in the cluster and reconciles every deployment with the same engine as on a laptop,
ModelDeployment resources included (``backends/kubernetes/crsync.py``): run ``pier server
--backend kubernetes`` (``deploy/kubernetes`` installs it).
"""

from __future__ import annotations

import typer

MESSAGE = ("`pier operator` is gone: the control plane runs in the cluster and reconciles ModelDeployment "
           "resources itself, with every field of the spec. Run `pier server --backend kubernetes` instead "
           "(deploy/kubernetes installs it; docs/kubernetes.md).")


def operator() -> None:
    """Removed: use `pier server --backend kubernetes` (the control plane reconciles ModelDeployments)."""
    typer.echo(MESSAGE, err=True)
    raise typer.Exit(2)
