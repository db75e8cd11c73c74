"""``--dist loadfile`` that survives a crashed worker.

A test that outlives its timeout ends its worker (pytest-timeout's ``thread`` method, see pyproject.toml)
and xdist starts another. pytest-xdist 3.8's file scheduler then deadlocks the whole run: it puts every
file the dead worker ever had back on the queue, finished ones included, and a finished file becomes an
empty work unit that no test report ever completes, so no worker is given work again
(pytest-dev/pytest-xdist#1323, #1378); and a new worker handed a single test waits for a second one before
it runs the first (#1327). A CI run that hit this stalled until its 90-minute limit.

``RecoveringLoadFile`` fixes both on top of xdist's own scheduler: the crashed worker's finished tests and
the test it crashed on (already reported failed) are not queued again, and a worker is always handed
either two tests or its shutdown.
"""

from __future__ import annotations

from typing import Any

from xdist.scheduler import LoadFileScheduling
from xdist.workermanage import WorkerController


class RecoveringLoadFile(LoadFileScheduling):
    def remove_node(self, node: WorkerController) -> str | None:
        workload = self.assigned_work.get(node, {})
        crashed: str | None = None
        if self._pending_of(workload):
            crashed = next(nodeid for unit in workload.values() for nodeid, done in unit.items() if not done)
            # The test it died on is reported failed by xdist; running it again would only repeat the hang.
            for unit in workload.values():
                if crashed in unit:
                    unit[crashed] = True
        # Only files with tests still to run go back on the queue: an empty unit would stall the run.
        for scope in [scope for scope, unit in workload.items() if all(unit.values())]:
            del workload[scope]
        xdist_crashed = super().remove_node(node)
        return crashed if crashed is not None else xdist_crashed

    def _reschedule(self, node: WorkerController) -> None:
        super()._reschedule(node)
        # A worker runs a test only once it knows the next one (or that there is none): top it up to two.
        if node.shutting_down or node not in self.assigned_work:
            return
        if self._pending_of(self.assigned_work[node]) < 2:
            if self.workqueue:
                self._assign_work_unit(node)
            else:
                node.shutdown()


def make_scheduler(config: Any, log: Any) -> RecoveringLoadFile | None:
    """The scheduler for ``--dist loadfile``; None (xdist's own choice) for every other mode."""
    if config.getvalue("dist") != "loadfile":
        return None
    return RecoveringLoadFile(config, log)
