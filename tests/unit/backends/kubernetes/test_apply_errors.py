import pytest

from modelpier import errors
from modelpier.backends.kubernetes.apply import api_error


@pytest.mark.parametrize(("status", "cls", "fragment"), [
    (401, errors.Unauthenticated, "credentials"),
    (403, errors.Forbidden, "namespace acme"),
    (404, errors.ServiceUnavailable, "kubectl apply -k deploy/kubernetes/base"),
    (422, errors.InvalidSpec, "rejected the ModelDeployment"),
    (500, errors.RemoteError, "answered 500"),
])
def test_api_server_answers_map_to_the_error_tree(status: int, cls: type[errors.PierError], fragment: str) -> None:
    error = api_error(status, "Boom", "acme")
    assert type(error) is cls
    assert fragment in error.message
