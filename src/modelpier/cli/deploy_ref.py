"""``pier deploy MODEL_REF``: the spec it sends, decided without I/O (unit-tested).

A new deployment gets a one-predictor spec. On an existing deployment the command changes the model
and nothing else: replicas, autoscaling, resources, followAlias, routes, cache and auth stay as they
are (``--replicas`` and ``--follow-alias`` change those when given), and the changes are listed so the
command can say what it did. It refuses what it cannot do without guessing, each time naming
``--replace`` (write a fresh one-predictor spec over the old one) or ``pier deploy -f``:

* a deployment with several predictors (which one would get the model?);
* a running canary (its predictors and weights are the canary's; a new model would end it).
"""

from __future__ import annotations

from dataclasses import dataclass

from modelpier.errors import Conflict
from modelpier.spec.deployment import ModelDeployment, ModelDeploymentSpec, parse_deployment
from modelpier.spec.names import ModelRef


@dataclass(frozen=True, slots=True)
class RefDeploy:
    document: ModelDeployment
    changes: tuple[str, ...]  # "model iris:1 -> iris:3", empty for a new deployment or no change
    replaced: bool = False


def fresh_document(ref: str, name: str, project: str | None, replicas: int, follow_alias: bool) -> ModelDeployment:
    predictor: dict[str, object] = {"name": "main", "model": ref, "replicas": replicas}
    if follow_alias:
        predictor["followAlias"] = True
    metadata = {"name": name, **({"project": project} if project else {})}
    return parse_deployment({"metadata": metadata, "spec": {"predictors": [predictor]}})


def plan_ref_deploy(ref: str, name: str, project: str | None, existing: ModelDeploymentSpec | None, *,
                    replicas: int | None, follow_alias: bool, replace: bool, canary_running: bool) -> RefDeploy:
    """The document ``pier deploy REF`` applies to ``name``, given the deployment's current spec (if any)."""
    if existing is None or replace:
        document = fresh_document(ref, name, project, 1 if replicas is None else replicas, follow_alias)
        return RefDeploy(document, ("replaced the whole spec",) if existing is not None else (), existing is not None)
    hint = f"edit its file and `pier deploy -f FILE`, or pass --replace to deploy {ref} alone with a new spec"
    if canary_running:
        raise Conflict(f"a canary of {name} is running: wait for it to end or stop it with `pier rollout canary "
                       f"{name} --abort`; or {hint}")
    if len(existing.predictors) != 1:
        names = ", ".join(p.name for p in existing.predictors)
        raise Conflict(f"deployment {name} has {len(existing.predictors)} predictors ({names}): a model reference "
                       f"names no predictor; {hint}")
    old = existing.predictors[0]
    follow = old.follow_alias or follow_alias
    changes: list[str] = []
    if (old.model or f"bundle {old.bundle}") != ref:
        changes.append(f"model {old.model or f'bundle {old.bundle}'} -> {ref}")
    if follow and ModelRef.parse(ref).alias is None:
        if follow_alias:  # asked for: the spec says why it cannot be
            follow = True
        else:
            follow = False
            changes.append(f"followAlias off ({ref} names no alias)")
    elif follow != old.follow_alias:
        changes.append("followAlias on")
    new_replicas = old.replicas if replicas is None else replicas
    if new_replicas != old.replicas:
        changes.append(f"replicas {old.replicas} -> {new_replicas}")
    predictor = old.model_copy(update={"model": ref, "bundle": None, "follow_alias": follow, "replicas": new_replicas})
    spec = existing.model_dump(mode="json", by_alias=True, exclude_none=True)
    spec["predictors"] = [predictor.model_dump(mode="json", by_alias=True, exclude_none=True)]
    metadata = {"name": name, **({"project": project} if project else {})}
    return RefDeploy(parse_deployment({"metadata": metadata, "spec": spec}), tuple(changes))
