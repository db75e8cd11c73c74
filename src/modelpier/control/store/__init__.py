"""The control plane's SQL stores: ``SqlDeploymentStore`` implements ``control.state.DeploymentStore``,
``SqlCanaryStore`` implements ``control.canary_state.CanaryStore``."""

from modelpier.control.store.canary import SqlCanaryStore
from modelpier.control.store.store import SqlDeploymentStore

__all__ = ["SqlCanaryStore", "SqlDeploymentStore"]
