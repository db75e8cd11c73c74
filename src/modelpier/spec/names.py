"""Names and references: what a user types to point at a model version.

A model name must be a Kubernetes DNS-1123 label, because it becomes part of object names, labels
and URLs on every backend. A reference is ``name`` (latest version), ``name:3`` (a version) or
``name:alias`` (a movable pointer such as ``production``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from modelpier.errors import InvalidName, InvalidReference
from modelpier.spec.bounds import MAX_INT32

_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
MAX_NAME_LENGTH = 63
# Aliases are label-like too, but may not be all digits (that would read as a version number).
_ALIAS = re.compile(r"^[a-z]([-a-z0-9_]*[a-z0-9])?$")
_TAG_KEY = re.compile(r"^[A-Za-z0-9_.\-/]{1,128}$")


def validate_name(name: str, *, what: str = "model name") -> str:
    """Return ``name`` if it is a lowercase DNS-1123 label, else raise ``InvalidName`` saying why."""
    if not isinstance(name, str) or not name:
        raise InvalidName(f"{what} must not be empty")
    if len(name) > MAX_NAME_LENGTH:
        raise InvalidName(f"{what} {name!r} is {len(name)} characters long; the limit is {MAX_NAME_LENGTH}")
    if not _DNS1123_LABEL.match(name):
        hint = " (use lowercase letters)" if name.lower() != name else ""
        raise InvalidName(
            f"{what} {name!r} is not a valid DNS-1123 label: use lowercase letters, digits and '-', "
            f"starting and ending with a letter or digit{hint}",
            details={"name": name},
        )
    return name


def validate_alias(alias: str) -> str:
    if not isinstance(alias, str) or not _ALIAS.match(alias) or len(alias) > MAX_NAME_LENGTH:
        raise InvalidName(
            f"alias {alias!r} is not valid: start with a lowercase letter, then lowercase letters, digits, "
            f"'-' or '_' (at most {MAX_NAME_LENGTH}); 'latest' and numbers are reserved",
            details={"alias": alias},
        )
    if alias == "latest":
        raise InvalidName("alias 'latest' is reserved: it always means the newest version")
    return alias


def validate_tag_key(key: str) -> str:
    if not isinstance(key, str) or not _TAG_KEY.match(key):
        raise InvalidName(
            f"tag key {key!r} is not valid: 1-128 characters of letters, digits, '_', '.', '-', '/'")
    return key


@dataclass(frozen=True, slots=True)
class ModelRef:
    """A parsed reference. Exactly one of ``version`` / ``alias`` is set, or neither (latest)."""

    name: str
    version: int | None = None
    alias: str | None = None

    @classmethod
    def parse(cls, text: str) -> ModelRef:
        if not isinstance(text, str) or not text.strip():
            raise InvalidReference("model reference must not be empty; use name, name:3 or name:alias")
        text = text.strip()
        name, sep, selector = text.partition(":")
        if sep and not selector:
            raise InvalidReference(f"model reference {text!r} ends with ':'; use name, name:3 or name:alias")
        try:
            validate_name(name)
        except InvalidName as exc:
            raise InvalidReference(f"model reference {text!r}: {exc.message}") from exc
        if not sep or selector == "latest":
            return cls(name=name)
        if selector.isascii() and selector.isdigit():  # not isdigit() alone: it takes '²', which int() refuses
            version = int(selector)
            if not 1 <= version <= MAX_INT32:
                raise InvalidReference(f"model reference {text!r}: versions go from 1 to {MAX_INT32}")
            return cls(name=name, version=version)
        try:
            validate_alias(selector)
        except InvalidName as exc:
            raise InvalidReference(f"model reference {text!r}: {exc.message}") from exc
        return cls(name=name, alias=selector)

    def __str__(self) -> str:
        if self.version is not None:
            return f"{self.name}:{self.version}"
        if self.alias is not None:
            return f"{self.name}:{self.alias}"
        return self.name
