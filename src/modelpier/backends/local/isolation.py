"""Where an isolated replica's environment is already built, start it there directly.

A replica of an ``isolated`` predictor runs ``pier serve --isolated``, which finds or builds its
environment and then replaces itself with the server run by the environment's Python: two
interpreter starts. When the environment is already in the cache (the common case: every replica
after the first), ``WarmEnvironments.find`` lets the supervisor start the environment's Python
directly instead, saving one. It asks the registry for the version's lock (one query) and caches the
answer by reference, since a resolved reference (``iris:3``) never changes its lock except by an
explicit re-lock, which then applies from the next start of a new revision.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

from modelpier.backends.base import ReplicaSpec
from modelpier.backends.local.environments import (
    EnvironmentCache,
    EnvironmentPlan,
    plan_environment,
    serve_env,
    serving_requirements,
)
from modelpier.errors import PierError
from modelpier.registry.factory import build_registry
from modelpier.settings import Settings

log = logging.getLogger("modelpier.backends.local")

EnvFor = Callable[[Mapping[str, str]], dict[str, str]]


class WarmEnvironments:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._cache = EnvironmentCache(settings.resolved_environments_dir)
        self._plans: dict[tuple[str, str], EnvironmentPlan | None] = {}
        self._serving: dict[str, str] | None = None

    def find(self, spec: ReplicaSpec) -> tuple[str, EnvFor] | None:
        """The environment's Python and its variables when ``spec``'s environment is built; else None
        (the replica then builds it itself, with ``--isolated``)."""
        plan = self._plan(spec)
        if plan is None or not self._cache.is_built(plan):
            return None
        root = self._settings.resolved_environments_dir
        return str(self._cache.python(plan)), lambda base: serve_env(base, root, plan)

    def _plan(self, spec: ReplicaSpec) -> EnvironmentPlan | None:
        key = (spec.project, spec.model)
        if key not in self._plans:
            try:
                registry = build_registry(self._settings)
                try:
                    lock = registry.resolve_shared(spec.model, project=spec.project).lock
                finally:
                    registry.close()
            except PierError as exc:  # the replica itself reports it, with --isolated
                log.debug("no warm environment for %s: %s", spec.model, exc.message)
                return None
            if self._serving is None:
                self._serving = serving_requirements()
            self._plans[key] = plan_environment(lock, self._serving) if lock is not None else None
        return self._plans[key]
