"""The Python client of deployments and model servers: ``modelpier.Client`` and ``modelpier.AsyncClient``.

Modules: ``sync``/``aio`` (the clients, the only I/O), ``core`` (options, routes, encoding shared by
both), ``tensors`` (caller data to tensors and back; pandas only when in use), ``wire`` (each HTTP
protocol's bodies), ``grpc`` (the V2 gRPC transport), ``retry`` (the pure retry decision),
``failures`` (answers to modelpier errors), ``jobs`` (the gateway's async jobs). docs/client.md.
"""

from __future__ import annotations

from modelpier.sdk.client.aio import AsyncClient
from modelpier.sdk.client.jobs import AsyncJob, Job
from modelpier.sdk.client.sync import Client
from modelpier.sdk.client.tensors import ModelInfo, Prediction, TensorInfo

__all__ = ["AsyncClient", "AsyncJob", "Client", "Job", "ModelInfo", "Prediction", "TensorInfo"]
