"""The embedded engine: jobs run on a pool of threads in the API process itself (no Redis, no
workers) — ``[jobs] engine = embedded``, the default. The flow's state is persisted in the
database, so the jobs a stopped process was running resume when it starts again."""

from __future__ import annotations

import concurrent.futures
import logging

from sqlalchemy import select
from taskflow import engines

from craton.db.models import Job, JobStatus
from craton.jobs.flow import JobEventListener, build_flow
from craton.jobs.results import fail_unfinished
from craton.jobs.runtime import JobRuntime
from craton.jobs.store import logbook_for, store_for

LOG = logging.getLogger(__name__)


def run_job(rt: JobRuntime, job_id: int) -> None:
    """Run (or resume) a job's flow in this thread."""
    rt.local_jobs.add(job_id)
    try:
        with rt.db.transaction(write=False) as session:
            if session.scalar(select(Job.id).where(Job.id == job_id)) is None:
                return
        book, flow_detail = logbook_for(rt, job_id)
        engine = engines.load(build_flow(job_id, rt.key), store=store_for(rt, job_id),
                              flow_detail=flow_detail, book=book,
                              backend=rt.taskflow_backend(), engine="serial")
        with JobEventListener(engine, rt, job_id):
            engine.run()
    except Exception as error:
        LOG.exception("job %s stopped", job_id)
        fail_unfinished(rt, job_id, error)
    finally:
        rt.local_jobs.discard(job_id)


class EmbeddedEngine:
    """Runs jobs on ``[jobs] concurrent_jobs`` threads of this process."""

    name = "embedded"

    def __init__(self, rt: JobRuntime) -> None:
        self.rt = rt
        self.pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=rt.settings.jobs.concurrent_jobs, thread_name_prefix="craton-job")
        self.futures: dict[int, concurrent.futures.Future[None]] = {}

    def submit(self, job_id: int) -> None:
        self.rt.local_jobs.add(job_id)
        self.futures[job_id] = self.pool.submit(run_job, self.rt, job_id)

    def wait(self, job_id: int, timeout: float | None = None) -> None:
        future = self.futures.get(job_id)
        if future is not None:
            future.result(timeout)

    def claimed_by(self, job_id: int) -> str | None:
        return None

    def resume_interrupted(self) -> list[int]:
        """Jobs this engine was running when its process stopped: run them again (their
        flows resume from the persisted state)."""
        with self.rt.db.transaction(write=False) as session:
            job_ids = list(session.scalars(select(Job.id).where(
                Job.engine == self.name,
                Job.status.in_([JobStatus.PENDING, JobStatus.RUNNING])).order_by(Job.id)))
        for job_id in job_ids:
            self.submit(job_id)
        return job_ids

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)
