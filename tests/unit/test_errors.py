import inspect

import pytest

from modelpier import errors


def _error_classes() -> list[type[errors.PierError]]:
    return [c for _, c in inspect.getmembers(errors, inspect.isclass) if issubclass(c, errors.PierError)]


@pytest.mark.parametrize("cls", _error_classes(), ids=lambda c: c.__name__)
def test_every_error_class_has_an_http_status_an_exit_code_and_is_in_the_tree(cls: type[errors.PierError]) -> None:
    assert cls in errors.ERROR_HTTP_STATUS
    assert cls in errors.ERROR_EXIT_CODE
    assert cls.__name__ in errors.__doc__  # the tree drawn in the module docstring stays complete


@pytest.mark.parametrize(("cls", "status"), [
    (errors.InvalidName, 422), (errors.NotFound, 404), (errors.Conflict, 409), (errors.DigestMismatch, 422),
    (errors.PayloadTooLarge, 413), (errors.StoreBusy, 423), (errors.RemoteUnreachable, 502),
])
def test_http_status_of_specific_classes(cls: type[errors.PierError], status: int) -> None:
    assert errors.http_status(cls("x")) == status


def test_subclasses_without_own_entry_inherit_their_parents_status() -> None:
    class Custom(errors.NotFound):
        pass

    assert errors.http_status(Custom("gone")) == 404
    assert errors.exit_code(Custom("gone")) == errors.ERROR_EXIT_CODE[errors.NotFound]


def test_remote_error_keeps_the_remotes_client_error_status() -> None:
    assert errors.http_status(errors.RemoteError("no", status=418)) == 418
    assert errors.http_status(errors.RemoteError("no", status=500)) == 502


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
