"""One client for the control plane's ``/api/v1``, used by the CLI, the dashboard and the gateway.

- ``call.py``: ``Call``, one request and how its answer is read; every endpoint is a function
  returning one: ``models.py`` (registry), ``blobs.py``, ``access.py`` (projects, members, quotas,
  tokens, users, audit), ``gateway.py`` (routing table, token checks, traffic reports), and
  ``control/api/calls.py`` (deployments, revisions, rollouts, canaries, traffic windows:
  their bodies live in ``control/``, above this layer).
- ``transport.py``: base URL, token, request id, timeouts, retries of idempotent calls that never
  reached the server, and the error envelope decoded into the error tree: written once.
- ``sync.py`` (``ControlClient``) and ``aio.py`` (``AsyncControlClient``) only send: the same calls,
  over ``httpx.Client`` and ``httpx.AsyncClient``.
- ``transfer.py``: push and pull of model versions between a local registry and a remote one.

Usage: ``with ControlClient(url, token=t) as api: api.send(models.get_version(None, "iris", 3))``.
"""

from modelpier.sdk.control_api.aio import AsyncControlClient
from modelpier.sdk.control_api.call import Call
from modelpier.sdk.control_api.sync import ControlClient

__all__ = ["AsyncControlClient", "Call", "ControlClient"]
