"""What a request may declare, checked before any tensor is allocated. Pure; used by every decoder.

A tensor's header (its ``shape`` and ``datatype``) costs a client a few bytes, while the array it
describes may cost the server gigabytes: ``shape: [100000000]`` on a BYTES input with no data made
a replica allocate 800 MB of pointers before it noticed the data was missing, and
``[0, 4611686018427387904, 4]`` made numpy refuse with an error that surfaced as a 500. So every
decoder (V2 JSON, the V2 binary extension, gRPC, KServe V1, Seldon) asks ``check_shape`` first:

- a shape is a list of at most ``MAX_DIMS`` non-negative integers;
- its *extent*, the product of its dimensions with zeros counted as ones, is within the request's
  element budget, so no dimension is ever absurd even when another one is zero (numpy refuses
  such shapes, and a budget of elements is what the operator sets: ``max_request_elements``);
- the elements of every input of a request together stay within that budget.

Then ``check_raw_size`` and ``check_value_count`` compare the declared shape with the bytes or
values actually present, again before allocating. A shape that does not fit the data is the
client's mistake: ``InvalidInput`` (400). A request over the budget is ``PayloadTooLarge`` (413),
naming the limit and the setting that raises it.
"""

from __future__ import annotations

from typing import Any

from modelpier.errors import InvalidInput, PayloadTooLarge
from modelpier.settings import LimitSettings

# numpy's own limit is 64 dimensions (32 before numpy 2); no model takes more than a handful, and a
# bound well below numpy's keeps its errors (500s) out of reach.
MAX_DIMS = 32
# The setting's default (16 Mi elements, why: limits.max_request_elements), for decoders called alone.
DEFAULT_MAX_ELEMENTS = LimitSettings().max_request_elements
_SETTING = "PIER_LIMITS__MAX_REQUEST_ELEMENTS or pier serve --max-request-elements"
_BYTES_LENGTH = 4  # each raw BYTES element starts with its 4-byte little-endian length


class ElementBudget:
    """Elements a request may still declare; one per request, shared by its inputs."""

    __slots__ = ("left", "limit")

    def __init__(self, limit: int = DEFAULT_MAX_ELEMENTS) -> None:
        self.limit = limit
        self.left = limit


def check_shape(shape: Any, name: str, budget: ElementBudget) -> tuple[tuple[int, ...], int]:
    """The shape as a tuple and its element count, charged to ``budget``; refuses before allocating."""
    if type(shape) is not list and type(shape) is not tuple:
        raise InvalidInput(f"input {name!r}: 'shape' must be a list of non-negative integers, got {shape!r}",
                           details={"input": name})
    if len(shape) > MAX_DIMS:
        raise InvalidInput(f"input {name!r}: 'shape' has {len(shape)} dimensions; at most {MAX_DIMS} are accepted",
                           details={"input": name, "dimensions": len(shape), "max_dimensions": MAX_DIMS})
    extent = count = 1
    for d in shape:
        if type(d) is not int or d < 0:
            raise InvalidInput(
                f"input {name!r}: 'shape' must be a list of non-negative integers, got {_short(shape)}",
                details={"input": name})
        if d:
            extent *= d
            if extent > budget.left:  # stops at once: a 10**30 dimension costs one multiplication
                raise _over_budget(name, shape, budget)
        count *= d
    budget.left -= count
    return tuple(shape), count


def check_raw_size(name: str, datatype: str, shape: tuple[int, ...], count: int, *, itemsize: int,
                   nbytes: int) -> None:
    """Refuse raw tensor bytes that cannot hold ``count`` elements of ``datatype``."""
    if datatype == "BYTES":
        if count * _BYTES_LENGTH > nbytes:
            raise InvalidInput(
                f"input {name!r}: shape {list(shape)} of BYTES needs at least {count * _BYTES_LENGTH} bytes "
                f"(a 4-byte length per element), got {nbytes}",
                details={"input": name, "shape": list(shape), "bytes": nbytes})
        return
    expected = count * itemsize
    if nbytes != expected:
        raise InvalidInput(
            f"input {name!r}: shape {list(shape)} of {datatype} needs {expected} bytes, got {nbytes}",
            details={"input": name, "expected_bytes": expected, "bytes": nbytes})


def check_value_count(name: str, shape: tuple[int, ...], count: int, values: int, where: str = "'data'") -> None:
    """Refuse a flat list of ``values`` that does not fill ``shape``."""
    if values != count:
        raise InvalidInput(f"input {name!r}: shape {list(shape)} needs {count} values in {where}, got {values}",
                           details={"input": name, "shape": list(shape), "values": values})


def check_decoded(name: str, shape: tuple[int, ...], budget: ElementBudget) -> None:
    """Charge an array decoded from a format without a declared shape (KServe V1 instances, Seldon
    ndarray): its size was bounded by the body it came from, but the request budget still holds."""
    check_shape(list(shape), name, budget)


def _over_budget(name: str, shape: Any, budget: ElementBudget) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"input {name!r}: shape {_short(shape)} is over the limit of {budget.limit} elements per request "
        f"(raise it with {_SETTING})",
        details={"input": name, "max_request_elements": budget.limit})


def _short(shape: Any) -> str:
    text = repr(shape if type(shape) is not tuple else list(shape))
    return text if len(text) <= 200 else text[:200] + "...]"
