"""Durable asynchronous inference jobs: submit now (202 + id), run in the background, poll or get called back.

``open_job_store`` picks SQLite (one machine) or Redis (several gateways); ``JobRunner`` runs what
was accepted; ``job_to_wire`` is the JSON the gateway answers. See docs/gateway-patterns.md.
"""

from modelpier.gateway.jobs.model import (
    FINISHED,
    Job,
    JobRequest,
    JobResult,
    JobStatus,
    new_job_id,
    validate_callback_url,
)
from modelpier.gateway.jobs.runner import Execute, JobRunner
from modelpier.gateway.jobs.store import JobStore, default_jobs_path, open_job_store
from modelpier.gateway.jobs.wire import job_to_wire, result_to_wire

__all__ = [
    "FINISHED",
    "Execute",
    "Job",
    "JobRequest",
    "JobResult",
    "JobRunner",
    "JobStatus",
    "JobStore",
    "default_jobs_path",
    "job_to_wire",
    "new_job_id",
    "open_job_store",
    "result_to_wire",
    "validate_callback_url",
]
