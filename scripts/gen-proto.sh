#!/usr/bin/env bash
# Regenerate the Python messages of the Open Inference Protocol V2 gRPC service from the vendored
# proto. The outputs are committed, so nothing needs protoc at install time; run this after
# changing grpc_predict_v2.proto or upgrading grpcio-tools. The messages live in spec/proto: the
# model server and the gateway (sibling layers) both read them. No *_pb2_grpc.py service stubs:
# both register the service by hand with generic handlers.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-.venv/bin/python}"
OUT=src/modelpier/spec/proto
"$PY" -m grpc_tools.protoc -I "$OUT" --python_out="$OUT" --pyi_out="$OUT" "$OUT/grpc_predict_v2.proto"
# Build the descriptors in a private pool: the message names (inference.*) are the same as those of
# tritonclient's Triton proto, and one process (a test, an application embedding both) may import
# both; the default pool refuses a second file defining the same symbols. gRPC only sees the
# method paths (/inference.GRPCInferenceService/...), which stay the spec's.
sed -i 's/^DESCRIPTOR = _descriptor_pool.Default().AddSerializedFile(/_POOL = _descriptor_pool.DescriptorPool()\nDESCRIPTOR = _POOL.AddSerializedFile(/' \
  "$OUT/grpc_predict_v2_pb2.py"
