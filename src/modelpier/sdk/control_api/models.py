"""The registry's endpoints: models, versions, aliases, tags and locks of one project.

``project=None`` is ``/api/v1/models``, the default project's registry (what a control plane
before projects served); any other project is ``/api/v1/projects/{project}/models``.
"""

from __future__ import annotations

from modelpier.registry.wire import CreatedVersionBody, LockBody, ModelBody, NewVersionBody, VersionBody
from modelpier.sdk.control_api.call import Call, delete, get, many, one, put, seg, send_model


def _models(project: str | None) -> str:
    return f"/projects/{seg(project)}/models" if project else "/models"


def _model(project: str | None, name: str) -> str:
    return f"{_models(project)}/{seg(name)}"


def _version(project: str | None, name: str, selector: str | int) -> str:
    return f"{_model(project, name)}/versions/{seg(selector)}"


def list_models(project: str | None, *, search: str | None = None) -> Call[list[ModelBody]]:
    return get(_models(project), many(ModelBody), {"search": search} if search else None)


def get_model(project: str | None, name: str) -> Call[ModelBody]:
    return get(_model(project, name), one(ModelBody))


def delete_model(project: str | None, name: str) -> Call[None]:
    return delete(_model(project, name))


def list_versions(project: str | None, name: str) -> Call[list[VersionBody]]:
    return get(f"{_model(project, name)}/versions", many(VersionBody))


def get_version(project: str | None, name: str, selector: str | int) -> Call[VersionBody]:
    """``selector``: a version number, an alias or ``latest``."""
    return get(_version(project, name, selector), one(VersionBody))


def create_version(project: str | None, name: str, body: NewVersionBody) -> Call[CreatedVersionBody]:
    return send_model("POST", f"{_model(project, name)}/versions", body, one(CreatedVersionBody))


def delete_version(project: str | None, name: str, version: int) -> Call[None]:
    return delete(_version(project, name, version))


def set_alias(project: str | None, name: str, alias: str, version: int) -> Call[VersionBody]:
    return put(f"{_model(project, name)}/aliases/{seg(alias)}", {"version": version}, one(VersionBody))


def delete_alias(project: str | None, name: str, alias: str) -> Call[None]:
    return delete(f"{_model(project, name)}/aliases/{seg(alias)}")


def set_model_tag(project: str | None, name: str, key: str, value: str) -> Call[ModelBody]:
    return put(f"{_model(project, name)}/tags/{seg(key)}", {"value": value}, one(ModelBody))


def delete_model_tag(project: str | None, name: str, key: str) -> Call[None]:
    return delete(f"{_model(project, name)}/tags/{seg(key)}")


def set_version_tag(project: str | None, name: str, selector: str, key: str, value: str) -> Call[VersionBody]:
    return put(f"{_version(project, name, selector)}/tags/{seg(key)}", {"value": value}, one(VersionBody))


def delete_version_tag(project: str | None, name: str, selector: str, key: str) -> Call[None]:
    return delete(f"{_version(project, name, selector)}/tags/{seg(key)}")


def set_lock(project: str | None, name: str, selector: str, lock: LockBody) -> Call[VersionBody]:
    return send_model("PUT", f"{_version(project, name, selector)}/lock", lock, one(VersionBody), exclude={"digest"})
