"""Every command a replica pod runs is one the ``pier`` of this checkout accepts (the same CLI is in the image)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from modelpier.backends.base import ReplicaSpec
from modelpier.backends.kubernetes.pods import PodOptions, render_pod
from tests.integration.kubernetes.conftest import pier_args_ok

SPEC = ReplicaSpec(project="team-a", deployment="iris", predictor="main", revision=1, template="t", model="iris:3",
                   outputs=("predict",))


@pytest.mark.parametrize("spec", [SPEC, replace(SPEC, batching=False, outputs=())])
def test_the_pull_and_the_server_commands_parse(spec: ReplicaSpec, tmp_path: Path) -> None:
    pod = render_pod(spec, "main-0a1b2c3d", 0, namespace="team-a", options=PodOptions(image="registry.test/pier:1"))
    for container in [*pod["spec"]["initContainers"], *pod["spec"]["containers"]]:
        assert container["command"] == ["pier"]
        assert pier_args_ok(container["args"], tmp_path) is None, container["args"]
    # A model image's entrypoint is `pier serve NAME=/opt/pier/model`: its arguments are serve's options.
    image = render_pod(replace(spec, image="registry.test/iris:1"), "main-0a1b2c3d", 0, namespace="team-a",
                       options=PodOptions(image="registry.test/pier:1"))
    assert pier_args_ok(["serve", "iris=/opt/pier/model", *image["spec"]["containers"][0]["args"]], tmp_path) is None
