"""What runs jobs in a process: the runtime (events, sources, secrets, the sandbox) and an
engine — ``EmbeddedEngine`` (this process's threads) or ``DistributedEngine`` (a Redis
jobboard that ``craton-worker`` processes serve), chosen by ``[jobs] engine``."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Protocol

from craton.config import Settings
from craton.db.session import Database
from craton.jobs import store
from craton.jobs.embedded import EmbeddedEngine
from craton.jobs.runtime import JobRuntime, register, unregister
from craton.policy import Policy
from craton.secrets.backends import SecretBackend
from craton.sources.fetch import Fetcher

LOG = logging.getLogger(__name__)
SHUTDOWN_SECONDS = 10.0


class Engine(Protocol):
    """Runs the flows of submitted jobs."""

    name: str

    def submit(self, job_id: int) -> None:
        """Start (or queue) a job just recorded as pending."""

    def wait(self, job_id: int, timeout: float | None = None) -> None:
        """Return once the job has finished; TimeoutError after ``timeout`` seconds."""

    def claimed_by(self, job_id: int) -> str | None:
        """The worker running the job, if another process runs it."""

    def resume_interrupted(self) -> list[int]:
        """Run again the jobs a stopped process left unfinished, if this engine owns them."""

    def close(self) -> None: ...


class JobSystem:
    """One process's jobs: the runtime and the engine that runs flows."""

    def __init__(self, settings: Settings, db: Database, secrets: SecretBackend,
                 fetcher: Fetcher, policy: Policy | None = None) -> None:
        self.runtime = JobRuntime(settings, db, secrets, fetcher, policy)
        register(self.runtime)
        # Loading TaskFlow's persistence plugin scans entry points (~0.7 s of CPU): at start,
        # not in a user's first request.
        self.runtime.taskflow_backend()
        self.engine: Engine
        if settings.jobs.engine == "distributed":
            from craton.jobs.distributed import DistributedEngine

            self.engine = DistributedEngine(self.runtime)
        else:
            self.engine = EmbeddedEngine(self.runtime)

    def forget(self, job_ids: Sequence[int]) -> None:
        """Drop what TaskFlow and Redis still hold of deleted jobs."""
        store.forget(self.runtime, job_ids)

    def running_here(self, job_id: int) -> bool:
        return job_id in self.runtime.local_jobs

    def shutdown(self, timeout: float = SHUTDOWN_SECONDS) -> list[int]:
        """The process is exiting: the jobs it runs stop now — their runs record nothing and
        run again in the next process — and every event emitted so far is stored. Returns
        the jobs that were running (whose threads now wait for the exit)."""
        rt = self.runtime
        running = sorted(rt.local_jobs)
        rt.stopping.set()
        # ansible-runner sees the cancel within a poll and kills its run.
        rt.wait_for_runs(timeout)
        for job_id in running:
            rt.emit(job_id, "job", None, {"interrupted": "the server stopped; the job "
                                                         "resumes when it starts again"})
        rt.sink.flush(timeout)
        if running:
            LOG.info("stopped jobs %s; they resume at the next start", running)
        return running

    def close(self) -> None:
        self.engine.close()
        unregister(self.runtime)
        self.runtime.close()
