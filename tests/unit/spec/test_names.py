import pytest

from modelpier.errors import InvalidName, InvalidReference
from modelpier.spec.names import ModelRef, validate_alias, validate_name, validate_tag_key


@pytest.mark.parametrize("name", ["iris", "a", "fraud-detector-2", "0abc", "x" * 63])
def test_valid_names(name: str) -> None:
    assert validate_name(name) == name


@pytest.mark.parametrize(("name", "fragment"), [
    ("", "must not be empty"),
    ("Iris", "use lowercase letters"),
    ("iris_v2", "DNS-1123"),
    ("-iris", "DNS-1123"),
    ("iris-", "DNS-1123"),
    ("ir is", "DNS-1123"),
    ("iris.v2", "DNS-1123"),
    ("x" * 64, "limit is 63"),
])
def test_invalid_names_say_why(name: str, fragment: str) -> None:
    with pytest.raises(InvalidName, match=fragment):
        validate_name(name)


@pytest.mark.parametrize(("text", "expected"), [
    ("iris", ModelRef("iris")),
    ("iris:latest", ModelRef("iris")),
    ("iris:3", ModelRef("iris", version=3)),
    ("iris:production", ModelRef("iris", alias="production")),
    ("  iris:staging ", ModelRef("iris", alias="staging")),
])
def test_parse_references(text: str, expected: ModelRef) -> None:
    assert ModelRef.parse(text) == expected


@pytest.mark.parametrize(("text", "fragment"), [
    ("", "must not be empty"),
    ("iris:", "ends with ':'"),
    ("Iris:3", "lowercase"),
    ("iris:0", "versions go from 1 to 2147483647"),
    ("iris:2147483648", "versions go from 1 to 2147483647"),
    ("iris:18446744073709551616", "versions go from 1 to"),
    ("iris:\u00b2", "iris:"),  # a digit to str.isdigit(), not to int()
    ("iris:Prod", "alias 'Prod' is not valid"),
    ("iris:a:b", "not valid"),
])
def test_bad_references_say_why(text: str, fragment: str) -> None:
    with pytest.raises(InvalidReference, match=fragment):
        ModelRef.parse(text)


@pytest.mark.parametrize("ref", ["iris", "iris:3", "iris:production"])
def test_reference_prints_back_as_parsed(ref: str) -> None:
    assert str(ModelRef.parse(ref)) == ref


@pytest.mark.parametrize("alias", ["production", "staging", "ab_test-2"])
def test_valid_aliases(alias: str) -> None:
    assert validate_alias(alias) == alias


@pytest.mark.parametrize("alias", ["", "3", "Prod", "latest", "-x", "x" * 64])
def test_invalid_aliases(alias: str) -> None:
    with pytest.raises(InvalidName):
        validate_alias(alias)


@pytest.mark.parametrize(("key", "ok"), [("team", True), ("mlflow.run_id", True), ("a/b", True),
                                          ("", False), ("has space", False), ("x" * 129, False)])
def test_tag_keys(key: str, ok: bool) -> None:
    if ok:
        assert validate_tag_key(key) == key
    else:
        with pytest.raises(InvalidName):
            validate_tag_key(key)
