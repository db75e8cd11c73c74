import pytest

import modelpier


def test_public_api_is_exactly_what_all_lists() -> None:
    assert set(modelpier.__all__) == {
        "AsyncClient", "Client", "Flavor", "ModelVersion", "Signature", "TensorSpec", "__version__",
        "import_mlflow", "load_model", "save_model",
    }
    for name in modelpier.__all__:
        assert getattr(modelpier, name) is not None


def test_unknown_attribute_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="does_not_exist"):
        modelpier.does_not_exist  # noqa: B018  # the attribute access is the behaviour under test
