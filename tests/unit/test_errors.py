"""The error tree and its one map to every transport, walked class by class.

Every ``PierError`` subclass counts, wherever it is defined: the walk imports every modelpier module
first (skipping those of an optional extra that is not installed), so a class added in ``server/``
or ``gateway/`` is checked on the control plane's HTTP, the model server's HTTP, Seldon and gRPC, the
gateway's HTTP and gRPC, and the CLI, through the adapters those transports really use.
"""

from __future__ import annotations

import asyncio
import importlib
import pkgutil
import re

import grpc
import httpx
import orjson
import pytest
from fastapi import FastAPI

import modelpier
from modelpier import errors
from modelpier.control.api.errors import install_error_handlers
from modelpier.gateway.dispatch import error_answer
from modelpier.gateway.grpc_status import answer_error, grpc_code_of
from modelpier.server.codecs import seldon
from modelpier.server.grpc import abort_status
from modelpier.server.http import error_status


def _import_every_module() -> None:
    for module in pkgutil.walk_packages(modelpier.__path__, "modelpier."):
        if module.name.endswith(".__main__") or ".migrations" in module.name:  # entry points, Alembic scripts
            continue
        try:
            importlib.import_module(module.name)
        except ImportError:  # an optional extra (kubernetes, torch, ...) not installed here
            continue


def _tree(root: type[errors.PierError]) -> list[type[errors.PierError]]:
    return [root, *(cls for sub in root.__subclasses__() for cls in _tree(sub))]


def _every_error_class() -> list[type[errors.PierError]]:
    _import_every_module()
    return [cls for cls in _tree(errors.PierError) if not cls.__module__.startswith("tests.")]


EVERY_CLASS = _every_error_class()
ID = {"ids": lambda cls: f"{cls.__module__.removeprefix('modelpier.')}.{cls.__name__}"}

# The gRPC codes consistent with each HTTP status the tree uses (google.rpc.Code's mapping). Two
# statuses allow two: 409 is ABORTED or ALREADY_EXISTS, 503 is UNAVAILABLE or, for an overload,
# RESOURCE_EXHAUSTED (see errors.py); 502 is INTERNAL (a bad answer) or UNAVAILABLE (no answer).
CONSISTENT: dict[int, set[str]] = {
    400: {"INVALID_ARGUMENT"}, 401: {"UNAUTHENTICATED"}, 403: {"PERMISSION_DENIED"}, 404: {"NOT_FOUND"},
    409: {"ABORTED", "ALREADY_EXISTS"}, 413: {"RESOURCE_EXHAUSTED"}, 422: {"INVALID_ARGUMENT"},
    423: {"UNAVAILABLE"}, 429: {"RESOURCE_EXHAUSTED"}, 431: {"RESOURCE_EXHAUSTED"}, 500: {"INTERNAL"},
    502: {"INTERNAL", "UNAVAILABLE"}, 503: {"UNAVAILABLE", "RESOURCE_EXHAUSTED"}, 504: {"DEADLINE_EXCEEDED"},
}


def _instance(cls: type[errors.PierError]) -> errors.PierError:
    return cls(f"{cls.__name__} happened", details={"why": "a test"})


def test_the_walk_finds_the_classes_defined_outside_errors_py() -> None:
    outside = {cls.__name__ for cls in EVERY_CLASS if cls.__module__ != "modelpier.errors"}
    assert {"ModelFailed", "UnbatchableOutput", "Unexpected"} <= outside
    assert set(errors.ERROR_CLASSES) <= set(EVERY_CLASS)


@pytest.mark.parametrize("cls", errors.ERROR_CLASSES, **ID)
def test_every_class_of_errors_py_declares_its_wire_and_is_drawn_in_the_tree(cls: type[errors.PierError]) -> None:
    assert "wire" in vars(cls)  # declared, not inherited by accident
    assert cls in errors.ERROR_HTTP_STATUS
    assert cls in errors.ERROR_EXIT_CODE
    assert errors.__doc__ is not None
    [line] = [line for line in errors.__doc__.splitlines() if re.search(rf"(── |^    ){cls.__name__}\b", line)]
    if cls is not errors.PierError:  # the docstring's columns say what the class declares
        assert re.search(rf"\b{cls.wire.http}\s+{cls.wire.grpc}\b", line), line


def test_codes_are_unique_so_an_envelope_names_one_class() -> None:
    codes = [cls.code for cls in EVERY_CLASS if "code" in vars(cls)]  # a subclass may share its parent's
    assert len(codes) == len(set(codes))
    assert all(errors.error_class(cls.code) is cls for cls in errors.ERROR_CLASSES)


@pytest.mark.parametrize("cls", EVERY_CLASS, **ID)
def test_the_declared_statuses_agree_with_each_other(cls: type[errors.PierError]) -> None:
    wire = cls.wire
    assert 400 <= wire.http < 600
    assert wire.http in CONSISTENT, f"add {wire.http} and its gRPC code to CONSISTENT"
    assert wire.grpc in CONSISTENT[wire.http]
    assert wire.grpc in grpc.StatusCode.__members__
    assert wire.exit == 1 or wire.exit >= 3  # 2 is Click's usage error
    if wire.grpc != errors.grpc_code_of_http(wire.http):  # the documented exceptions only
        assert issubclass(cls, (errors.Overloaded, errors.AlreadyExists, errors.RemoteUnreachable))


@pytest.mark.parametrize("cls", EVERY_CLASS, **ID)
def test_the_model_servers_transports_answer_with_the_map(cls: type[errors.PierError]) -> None:
    error = _instance(cls)
    status, code, message, headers = error_status(error)  # V2, KServe V1, MLflow scoring
    assert status == errors.inference_http_status(error)
    assert status == (400 if isinstance(error, errors.InvalidInput) else cls.wire.http)
    assert (code, message) == (cls.code, error.message)
    hint = errors.retry_after_s(error)
    assert headers == ([] if hint is None else [(b"retry-after", str(hint).encode())])
    assert abort_status(error) == (grpc.StatusCode[cls.wire.grpc], cls.code, error.message)


@pytest.mark.parametrize("cls", EVERY_CLASS, **ID)
def test_seldons_error_body_is_well_formed(cls: type[errors.PierError]) -> None:
    error = _instance(cls)
    body = orjson.loads(seldon.encode_error(error))
    assert set(body) == {"status"}
    assert set(body["status"]) == {"code", "info", "reason", "status"}
    assert body["status"]["code"] == errors.inference_http_status(error)
    assert body["status"]["info"] == error.message
    assert body["status"]["status"] == "FAILURE"
    assert re.fullmatch(r"[A-Z][A-Z_]*", body["status"]["reason"])
    if isinstance(error, errors.InvalidInput):
        assert body["status"]["reason"] == "MICROSERVICE_BAD_DATA"


@pytest.mark.parametrize("cls", EVERY_CLASS, **ID)
def test_the_gateways_transports_answer_with_the_map(cls: type[errors.PierError]) -> None:
    error = _instance(cls)
    answer = error_answer(error)
    assert answer.status == cls.wire.http
    assert orjson.loads(answer.body) == error.to_dict()
    # Over gRPC the refusal's envelope is read back: known codes by class, others by status.
    assert answer_error(answer) == (grpc.StatusCode[cls.wire.grpc], error.message)
    assert grpc_code_of(cls.wire.http, cls.code) == grpc.StatusCode[cls.wire.grpc]


def _control_plane() -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)
    by_name = {f"{cls.__module__}.{cls.__qualname__}": cls for cls in EVERY_CLASS}

    @app.get("/raise/{name}")
    def raise_(name: str) -> None:
        raise _instance(by_name[name])

    return app


def test_the_control_planes_handlers_answer_with_the_map() -> None:
    async def answers() -> dict[type[errors.PierError], httpx.Response]:
        transport = httpx.ASGITransport(_control_plane(), raise_app_exceptions=True)
        async with httpx.AsyncClient(transport=transport, base_url="http://control") as client:
            return {cls: await client.get(f"/raise/{cls.__module__}.{cls.__qualname__}") for cls in EVERY_CLASS}

    for cls, response in asyncio.run(answers()).items():
        error = _instance(cls)
        assert response.status_code == cls.wire.http, cls
        assert response.json() == error.to_dict(), cls
        hint = errors.retry_after_s(error)
        assert response.headers.get("retry-after") == (None if hint is None else str(hint)), cls


@pytest.mark.parametrize("cls", EVERY_CLASS, **ID)
def test_the_cli_exits_with_the_declared_code(cls: type[errors.PierError]) -> None:
    assert errors.exit_code(_instance(cls)) == cls.wire.exit


@pytest.mark.parametrize(("cls", "status"), [
    (errors.InvalidName, 422), (errors.NotFound, 404), (errors.Conflict, 409), (errors.DigestMismatch, 422),
    (errors.PayloadTooLarge, 413), (errors.StoreBusy, 423), (errors.RemoteUnreachable, 502),
])
def test_http_status_of_specific_classes(cls: type[errors.PierError], status: int) -> None:
    assert errors.http_status(cls("x")) == status


@pytest.mark.parametrize(("error", "code"), [
    (errors.InvalidSpec("x"), "INVALID_ARGUMENT"), (errors.Overloaded("x"), "RESOURCE_EXHAUSTED"),
    (errors.ServiceUnavailable("x"), "UNAVAILABLE"), (errors.Conflict("x"), "ABORTED"),
    (errors.RemoteError("x"), "INTERNAL"), (errors.RemoteError("gone", status=404), "NOT_FOUND"),
])
def test_grpc_code_of_specific_errors(error: errors.PierError, code: str) -> None:
    assert errors.grpc_code(error) == code


def test_subclasses_without_own_entry_inherit_their_parents_status() -> None:
    class Custom(errors.NotFound):
        pass

    assert errors.http_status(Custom("gone")) == 404
    assert errors.grpc_code(Custom("gone")) == "NOT_FOUND"
    assert errors.exit_code(Custom("gone")) == errors.ERROR_EXIT_CODE[errors.NotFound]


def test_remote_error_keeps_the_remotes_client_error_status() -> None:
    assert errors.http_status(errors.RemoteError("no", status=418)) == 418
    assert errors.http_status(errors.RemoteError("no", status=500)) == 502


def test_the_inference_protocols_answer_400_for_every_input_error() -> None:
    assert errors.http_status(errors.InvalidSpec("x")) == 422
    assert errors.inference_http_status(errors.InvalidSpec("x")) == 400
    assert errors.inference_http_status(errors.IntegrityError("x")) == 422  # not an input error


def test_retry_after_hints() -> None:
    assert errors.retry_after_s(errors.Overloaded("x", retry_after_s=7)) == 7
    assert errors.retry_after_s(errors.ServiceUnavailable("x")) == 1
    assert errors.retry_after_s(errors.StoreBusy("x")) == 1
    assert errors.retry_after_s(errors.NotFound("x")) is None


def test_envelope_round_trips_to_the_same_class_and_message() -> None:
    original = errors.DigestMismatch("bytes differ", details={"want": "a"})
    rebuilt = errors.from_envelope(422, original.to_dict())
    assert type(rebuilt) is errors.DigestMismatch
    assert rebuilt.message == "bytes differ"
    assert rebuilt.details == {"want": "a"}


def test_unknown_envelope_becomes_a_remote_error_with_the_status() -> None:
    rebuilt = errors.from_envelope(503, "<html>bad gateway</html>")
    assert isinstance(rebuilt, errors.RemoteError)
    assert rebuilt.status == 503
    assert "503" in rebuilt.message
