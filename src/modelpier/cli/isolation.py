"""``pier serve --isolated``: re-run the server inside the virtualenv built from the models' lock.

Resolves every model reference, checks they share one environment (``plan_environment``), builds it
if the cache lacks it (``EnvironmentCache``, shared with replicas), then replaces this process with
the same server command run by the environment's Python (``os.execve``: same pid, so a supervisor
keeps its handle, and nothing of this interpreter stays loaded). The child knows it is isolated from
``PIER_ISOLATED_ENV`` and serves normally.
"""

from __future__ import annotations

import logging
import os
import sys
import time

from modelpier.backends.local.environments import (
    EnvironmentCache,
    EnvironmentPlan,
    plan_environment,
    serve_env,
    serving_requirements,
)
from modelpier.backends.local.supervisor import child_env
from modelpier.errors import InvalidSpec
from modelpier.registry.factory import build_registry
from modelpier.server.loading import is_plain_path
from modelpier.settings import Settings

log = logging.getLogger("modelpier.server")


def plan_for(settings: Settings, refs: list[str]) -> EnvironmentPlan:
    """The one environment every model of ``refs`` runs in (``InvalidSpec`` when there is none)."""
    plain = [r for r in refs if is_plain_path(r)]
    if plain:
        raise InvalidSpec(f"--isolated serves registry versions (they carry a lock); {plain[0]!r} is a path: "
                          "register it with pier models save first")
    registry = build_registry(settings)
    try:
        versions = [registry.resolve(r) for r in refs]
    finally:
        registry.close()
    serving = serving_requirements()
    plans: dict[str, EnvironmentPlan] = {}
    for version in versions:
        lock = version.lock
        if lock is None:
            raise InvalidSpec(f"{version.ref} records no environment lock; lock it with "
                              f"`pier models lock {version.ref} [--requirements FILE]`")
        plans[version.ref] = plan_environment(lock, serving)
    keys = {p.key for p in plans.values()}
    if len(keys) > 1:
        raise InvalidSpec(f"the models need different environments ({', '.join(sorted(plans))}): serve each "
                          "isolated in its own server", details={ref: p.key for ref, p in plans.items()})
    return next(iter(plans.values()))


def server_args(argv: list[str]) -> list[str]:
    """This server's own arguments (after ``serve`` for ``pier serve``), without ``--isolated``."""
    args = argv[1:]
    if not argv[0].endswith("__main__.py") and "serve" in args:
        args = args[args.index("serve") + 1:]
    return [a for a in args if a != "--isolated"]


def exec_isolated(settings: Settings, refs: list[str]) -> None:
    """Replace this process with the server run in the models' environment (builds it if needed)."""
    started = time.perf_counter()
    plan = plan_for(settings, refs)
    root = settings.resolved_environments_dir
    cache = EnvironmentCache(root)
    cache.ensure(plan)
    python = str(cache.python(plan))
    log.info("isolated: environment %s ready in %.2fs; starting the server in it", plan.key,
             time.perf_counter() - started)
    env = serve_env(child_env(settings, os.environ), root, plan)
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    argv = [python, "-m", "modelpier.server", *server_args(sys.argv)]
    os.execve(python, argv, env)  # noqa: S606 -- our own interpreter and arguments, no shell to inject into
