"""The V2 binary tensor data extension, and raw tensor bytes (shared with gRPC's raw contents).

A request may carry ``Inference-Header-Content-Length: N``: the first N bytes are the JSON header,
the rest is the tensors' raw bytes, in input order, each input's size in its
``parameters.binary_data_size``. Raw bytes are row-major elements in little-endian order; BYTES
elements are each a 4-byte little-endian length followed by the bytes. A response sends outputs as
raw bytes when the request asked (``parameters.binary_data_output`` for all, an output's own
``parameters.binary_data``, true or false, overriding it for that output), with the JSON header's
length in the same header.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from modelpier.errors import InvalidInput
from modelpier.server.codecs import v2_json
from modelpier.server.codecs.limits import DEFAULT_MAX_ELEMENTS, ElementBudget, check_raw_size, check_shape
from modelpier.server.codecs.tensors import dtype_of
from modelpier.server.types import Array, InferenceRequest, InferenceResponse
from modelpier.spec.signature import BYTES_LENGTH, pack_bytes_elements

HEADER = "inference-header-content-length"


def raw_to_array(raw: bytes | memoryview, datatype: str, shape: tuple[int, ...], count: int, name: str) -> Array:
    """Decode one tensor's raw bytes, checking their size against the shape (of ``count`` elements,
    already charged to the request's budget) before anything is allocated."""
    dtype = dtype_of(datatype, name)
    check_raw_size(name, datatype, shape, count, itemsize=dtype.itemsize, nbytes=len(raw))
    if datatype == "BYTES":
        return _bytes_elements(bytes(raw), count, name).reshape(shape)
    return np.frombuffer(raw, dtype=dtype.newbyteorder("<")).reshape(shape)


def _bytes_elements(raw: bytes, count: int, name: str) -> Array:
    out = np.empty(count, dtype=object)
    offset = 0
    for i in range(count):
        if offset + 4 > len(raw):
            raise InvalidInput(f"input {name!r}: raw BYTES data ends after {i} of {count} elements")
        (size,) = BYTES_LENGTH.unpack_from(raw, offset)
        offset += 4
        if offset + size > len(raw):
            raise InvalidInput(f"input {name!r}: raw BYTES element {i} runs past the end of the data")
        out[i] = raw[offset:offset + size]
        offset += size
    if offset != len(raw):
        raise InvalidInput(f"input {name!r}: {len(raw) - offset} bytes left after {count} BYTES elements")
    return out


def array_to_raw(array: Array) -> bytes:
    if array.dtype.kind in "OSU":
        return pack_bytes_elements(array)
    return np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).tobytes()


def decode_request(body: bytes, header_length: int, max_elements: int = DEFAULT_MAX_ELEMENTS) -> InferenceRequest:
    """A request whose first ``header_length`` bytes are JSON and the rest raw tensor data; its tensors
    together hold at most ``max_elements`` elements (see ``limits``)."""
    if header_length < 0 or header_length > len(body):
        raise InvalidInput(f"Inference-Header-Content-Length is {header_length} but the body has "
                           f"{len(body)} bytes")
    entries, request = v2_json.parse_header(v2_json.loads(body[:header_length]))
    binary = memoryview(body)[header_length:]
    offset = 0
    budget = ElementBudget(max_elements)
    for entry in entries:
        name = entry["name"]
        params = entry.get("parameters")
        size = params.get("binary_data_size") if type(params) is dict else None
        if size is None:
            name, array = v2_json.decode_tensor(entry, budget)
        else:
            if type(size) is not int or size < 0 or offset + size > len(binary):
                raise InvalidInput(f"input {name!r}: binary_data_size {size!r} does not fit the "
                                   f"{len(binary) - offset} bytes of binary data left",
                                   details={"input": name})
            shape, count = check_shape(entry.get("shape"), name, budget)
            array = raw_to_array(binary[offset:offset + size], str(entry.get("datatype")), shape, count, name)
            offset += size
        if name in request.inputs:
            raise InvalidInput(f"input {name!r} appears twice", details={"input": name})
        request.inputs[name] = array
    if offset != len(binary):
        raise InvalidInput(f"{len(binary) - offset} bytes of binary data were not claimed by any input's "
                           "binary_data_size")
    return request


def wants_binary(request: InferenceRequest) -> dict[str, bool] | None:
    """Which outputs go as raw bytes; None for a pure JSON answer.

    The extension's precedence: an output's own ``binary_data`` parameter decides for that output;
    the request-wide ``binary_data_output`` decides for every other output (key ``*``).
    """
    everything = bool(request.parameters and request.parameters.get("binary_data_output"))
    choice: dict[str, bool] = {"*": everything}
    for o in request.outputs or ():
        if o.parameters and "binary_data" in o.parameters:
            choice[o.name] = bool(o.parameters["binary_data"])
    return choice if any(choice.values()) else None


def encode_response(response: InferenceResponse, binary: dict[str, bool]) -> tuple[bytes, int]:
    """The body and its JSON header's length; ``binary`` as ``wants_binary`` returns it."""
    doc = v2_json.response_doc(response)
    chunks: list[bytes] = []
    everything = binary.get("*", False)
    for out_doc, out in zip(doc["outputs"], response.outputs, strict=True):
        if binary.get(out.name, everything):
            raw = array_to_raw(out.data)
            del out_doc["data"]
            params: dict[str, Any] = dict(out.parameters or {})
            params.pop("binary_data", None)
            params["binary_data_size"] = len(raw)
            out_doc["parameters"] = params
            chunks.append(raw)
    header = v2_json.dumps(doc)
    return header + b"".join(chunks), len(header)
