"""The control plane's SQL store: ``SqlDeploymentStore`` implements ``control.state.DeploymentStore``."""

from modelpier.control.store.store import SqlDeploymentStore

__all__ = ["SqlDeploymentStore"]
