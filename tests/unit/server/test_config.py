from __future__ import annotations

import pytest

from modelpier.errors import InvalidSpec
from modelpier.server.config import ModelOptions, ModelSource, apply_model_option
from modelpier.server.loading import is_plain_path, served_name


@pytest.mark.parametrize(("text", "ref", "name"), [
    ("iris:3", "iris:3", None), ("fast=iris:3", "iris:3", "fast"), ("./a=b.joblib", "./a=b.joblib", None),
])
def test_model_source_parse(text: str, ref: str, name: str | None) -> None:
    assert ModelSource.parse(text) == ModelSource(ref=ref, name=name)


def test_model_options_apply_one_by_one() -> None:
    options = apply_model_option(ModelOptions(), "batching", "off")
    options = apply_model_option(options, "max_batch_size", "8")
    options = apply_model_option(options, "outputs", "predict")
    assert not options.batching.enabled
    assert options.batching.max_batch_size == 8
    assert options.outputs == ("predict",)
    with pytest.raises(InvalidSpec, match="unknown model option"):
        apply_model_option(options, "colour", "red")
    with pytest.raises(InvalidSpec, match="not a valid value"):
        apply_model_option(options, "max_queue", "many")
    with pytest.raises(InvalidSpec, match="max_batch_size must be >= 1"):
        apply_model_option(options, "max_batch_size", "0")


def test_names_and_paths() -> None:
    assert is_plain_path("./model.joblib")
    assert is_plain_path("/x/y")
    assert not is_plain_path("iris:prod")
    assert served_name(ModelSource("/tmp/My Model.joblib")) == "My-Model"
    assert served_name(ModelSource("iris:production")) == "iris"
    with pytest.raises(InvalidSpec):
        served_name(ModelSource("iris", name="bad name"))
