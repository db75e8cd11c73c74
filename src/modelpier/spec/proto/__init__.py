"""Wire nouns of the Open Inference Protocol V2 over gRPC: the generated protobuf messages.

``grpc_predict_v2_pb2`` is generated from the vendored ``grpc_predict_v2.proto`` by
``scripts/gen-proto.sh`` and committed. It lives in ``spec`` because two sibling parts read the same
messages: the model server (``server/grpc.py``, ``server/codecs/v2_grpc.py``) encodes and decodes
them, and the gateway decodes ``ModelInferRequest``/``ModelInferResponse`` for shadow comparison and
the prediction log. It imports only ``google.protobuf``; the service is registered by hand with
generic handlers on both sides, so no ``*_pb2_grpc`` stubs are generated.
"""
