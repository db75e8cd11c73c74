"""The model server (``pier serve``): hosts models over V2 REST and gRPC, KServe V1 and Seldon v1.

``app.build_server`` is the composition root. Layers, top down: transports (``http.py``,
``grpc.py``) decode with ``codecs/`` and call the transport-neutral ``dataplane.DataPlane``, which
checks inputs (``validation.py``) and hands them to a model's runner (``batching/queue.py`` or
``runners.DirectRunner``), which runs the runtime through ``execution.py``.
"""
