"""What every replica pod and the platform image agree on: the image, the ports and the model home.

The backend's pods (``pods.py``) listen on these ports and keep models in ``MODEL_HOME``; the
platform image (``Dockerfile``) and ``pier build image`` (``images/build.py``) are built to match.
"""

from __future__ import annotations

from typing import Final

from modelpier import __version__

DEFAULT_IMAGE: Final = f"ghcr.io/modelpier/modelpier:{__version__}"
HTTP_PORT: Final = 8080
GRPC_PORT: Final = 8081
MODEL_HOME: Final = "/var/lib/modelpier"
