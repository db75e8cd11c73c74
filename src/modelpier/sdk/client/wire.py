"""Request bodies and answers of each HTTP protocol the client speaks. Pure: bytes in, bytes out.

- Open Inference Protocol V2 as JSON, or with the binary tensor extension: a JSON header
  (``Inference-Header-Content-Length`` bytes) followed by each tensor's raw little-endian bytes
  (BYTES elements as a 4-byte length and the bytes), inputs marked ``binary_data_size`` and outputs
  asked for as binary with ``binary_data_output``.
- KServe V1: ``{"instances": rows}`` (rows of objects for several inputs) → ``{"predictions": ...}``,
  the model's first output.
- Seldon Core v1: ``{"data": {"ndarray": rows}}`` (``jsonData`` for several inputs) → the first
  output in ``data``, or every output in ``jsonData``.
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np
import orjson

from modelpier.errors import RemoteError
from modelpier.sdk.client.tensors import NUMPY, Array, ModelInfo, Tensor, decode_array
from modelpier.spec.signature import BYTES_LENGTH, numpy_dtype, pack_bytes_elements

_NUMPY = orjson.OPT_SERIALIZE_NUMPY
HEADER_LENGTH = "inference-header-content-length"


def loads(body: bytes, what: str) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        raise RemoteError(f"{what} is not JSON: {body[:200]!r}") from None


def _json_data(array: Array) -> Any:
    if array.dtype.kind in "biuf":
        return np.ascontiguousarray(array).reshape(-1)  # orjson writes numpy arrays natively
    return [v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v) for v in array.reshape(-1)]


_LITTLE = sys.byteorder == "little"
RAW_DTYPES = {name: dtype.newbyteorder("<") for name, dtype in NUMPY.items() if name != "BYTES"}


def raw_bytes(array: Array) -> bytes:
    kind = array.dtype.kind
    if kind in "biuf" and array.flags.c_contiguous and (array.dtype.byteorder == "<" or (
            _LITTLE and array.dtype.byteorder in "=|")):
        return array.tobytes()  # already row-major little-endian: no copy but the bytes
    if kind in "OSU":
        return pack_bytes_elements(array)
    return np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).tobytes()


def numeric_bytes(tensors: list[Tensor]) -> int:
    """Bytes of the tensors' data, what decides JSON or binary when the caller did not."""
    return sum(t.array.nbytes if t.array.dtype.kind in "biuf" else 16 * t.array.size for t in tensors)


def _outputs_doc(outputs: list[str] | None, binary: bool) -> list[dict[str, Any]] | None:
    if not outputs:
        return None
    if binary:
        return [{"name": n, "parameters": {"binary_data": True}} for n in outputs]
    return [{"name": n} for n in outputs]


def v2_request(tensors: list[Tensor], *, binary: bool, outputs: list[str] | None = None,
               parameters: dict[str, Any] | None = None, request_id: str | None = None) -> tuple[bytes, int | None]:
    """The V2 infer body, and the JSON header's length when it carries binary tensors."""
    doc: dict[str, Any] = {}
    if request_id:
        doc["id"] = request_id
    params = dict(parameters or {})
    if binary:
        params["binary_data_output"] = True
        chunks = [raw_bytes(t.array) for t in tensors]
        doc["inputs"] = [{"name": t.name, "shape": list(t.array.shape), "datatype": t.datatype,
                          "parameters": {"binary_data_size": len(c)}} for t, c in zip(tensors, chunks, strict=True)]
    else:
        doc["inputs"] = [{"name": t.name, "shape": list(t.array.shape), "datatype": t.datatype,
                          "data": _json_data(t.array)} for t in tensors]
    wanted = _outputs_doc(outputs, binary)
    if wanted:
        doc["outputs"] = wanted
    if params:
        doc["parameters"] = params
    header = orjson.dumps(doc, option=_NUMPY)
    if not binary:
        return header, None
    return header + b"".join(chunks), len(header)


def _bytes_elements(raw: bytes, count: int, name: str) -> Array:
    out = np.empty(count, dtype=object)
    offset = 0
    for i in range(count):
        if offset + 4 > len(raw):
            raise RemoteError(f"output {name!r}: BYTES data ends after {i} of {count} elements")
        (size,) = BYTES_LENGTH.unpack_from(raw, offset)
        out[i] = raw[offset + 4:offset + 4 + size]
        offset += 4 + size
    return out


def raw_array(raw: bytes, datatype: str, shape: list[int], name: str) -> Array:
    count = 1
    for d in shape:
        count *= d
    if datatype == "BYTES":
        return _bytes_elements(raw, count, name).reshape(shape)
    dtype = RAW_DTYPES.get(datatype) or numpy_dtype(datatype).newbyteorder("<")
    if len(raw) != count * dtype.itemsize:
        raise RemoteError(f"output {name!r}: {len(raw)} bytes do not fit {datatype} of shape {shape}")
    return np.frombuffer(raw, dtype=dtype).reshape(shape)


def v2_response(body: bytes, header_length: int | None) -> tuple[dict[str, Array], dict[str, Any]]:
    """Outputs by name and the response document (model_name, model_version, id, parameters)."""
    if header_length is None:
        doc = loads(body, "the V2 answer")
        binary = b""
    else:
        doc = loads(body[:header_length], "the V2 answer's JSON header")
        binary = body[header_length:]
    if not isinstance(doc, dict) or not isinstance(doc.get("outputs"), list):
        raise RemoteError(f"the V2 answer has no 'outputs' list: {str(doc)[:200]}")
    outputs: dict[str, Array] = {}
    offset = 0
    for out in doc["outputs"]:
        name, datatype, shape = str(out.get("name")), str(out.get("datatype")), list(out.get("shape") or [])
        size = (out.get("parameters") or {}).get("binary_data_size")
        if size is not None:
            outputs[name] = raw_array(binary[offset:offset + int(size)], datatype, shape, name)
            offset += int(size)
        else:
            outputs[name] = decode_array(out.get("data"), datatype, shape, name)
    return outputs, doc


def _plain(array: Array) -> Any:
    """What orjson can write: numeric arrays as they are, text as nested lists of str."""
    if array.dtype.kind in "biuf":
        return np.ascontiguousarray(array)
    return np.vectorize(lambda v: v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v),
                        otypes=[object])(array).tolist()


def _rows(tensors: list[Tensor]) -> Any:
    if len(tensors) == 1:
        return _plain(tensors[0].array)
    columns = {t.name: t.array.tolist() if t.array.dtype.kind in "biuf" else _plain(t.array) for t in tensors}
    count = len(next(iter(columns.values())))
    return [{name: values[i] for name, values in columns.items()} for i in range(count)]


def kserve_v1_request(tensors: list[Tensor]) -> bytes:
    return orjson.dumps({"instances": _rows(tensors)}, option=_NUMPY)


def kserve_v1_response(body: bytes, model: ModelInfo | None) -> dict[str, Array]:
    doc = loads(body, "the KServe V1 answer")
    if not isinstance(doc, dict) or "predictions" not in doc:
        raise RemoteError(f"the KServe V1 answer has no 'predictions': {str(doc)[:200]}")
    name = model.outputs[0].name if model and model.outputs else "predictions"
    return {name: np.asarray(doc["predictions"])}


def seldon_request(tensors: list[Tensor]) -> bytes:
    if len(tensors) == 1:
        return orjson.dumps({"data": {"ndarray": _plain(tensors[0].array)}}, option=_NUMPY)
    return orjson.dumps({"jsonData": {t.name: _plain(t.array) for t in tensors}}, option=_NUMPY)


def seldon_response(body: bytes) -> dict[str, Array]:
    doc = loads(body, "the Seldon answer")
    if isinstance(doc, dict) and isinstance(doc.get("jsonData"), dict):
        return {str(k): np.asarray(v) for k, v in doc["jsonData"].items()}
    data = doc.get("data") if isinstance(doc, dict) else None
    if not isinstance(data, dict):
        raise RemoteError(f"the Seldon answer has no 'data': {str(doc)[:200]}")
    names = data.get("names") or ["predictions"]
    name = str(names[0]).split(":")[0]
    if "ndarray" in data:
        return {name: np.asarray(data["ndarray"])}
    tensor = data.get("tensor") or {}
    return {name: np.asarray(tensor.get("values", [])).reshape(tensor.get("shape") or [-1])}
