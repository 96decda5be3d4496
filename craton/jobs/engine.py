"""Running job flows: in this process (embedded), or by posting them to a Redis jobboard that
``craton-worker`` conductors claim (distributed). Either way the flow's state is persisted in
the SQL database, so an interrupted job resumes where it stopped."""

from __future__ import annotations

import concurrent.futures
import contextlib
import logging
import uuid
from typing import TYPE_CHECKING, Any

import futurist
from sqlalchemy import select
from taskflow import engines
from taskflow import exceptions as taskflow_errors
from taskflow.listeners import base as listeners
from taskflow.persistence import models as taskflow_models

from craton.db.models import Job, JobStatus
from craton.jobs.events import FLOW_EVENT
from craton.jobs.flows import build_flow, finish
from craton.jobs.runtime import JobRuntime

if TYPE_CHECKING:
    from craton.jobs.distributed import DistributedEngine

LOG = logging.getLogger(__name__)
NAMESPACE = uuid.UUID("6f1f3c1e-7a55-4f5e-9a3b-6d2a0c8e4b11")


def book_uuid(job_id: int) -> str:
    """The TaskFlow logbook of a job has a fixed id, so any process finds it again."""
    return str(uuid.uuid5(NAMESPACE, f"craton-job-{job_id}"))


class EventListener(listeners.Listener):
    """TaskFlow state changes of a job's flow and tasks, as job events."""

    def __init__(self, engine: Any, rt: JobRuntime, job_id: int) -> None:
        super().__init__(engine)
        self.rt = rt
        self.job_id = job_id

    def _flow_receiver(self, state: str, details: dict[str, Any]) -> None:
        self.rt.emit(self.job_id, FLOW_EVENT, None,
                     {"flow": details.get("flow_name"), "state": state})

    def _task_receiver(self, state: str, details: dict[str, Any]) -> None:
        name = details.get("task_name", "")
        host = name.removeprefix("host:") if name.startswith("host:") else None
        self.rt.emit(self.job_id, "taskflow.task", host, {"task": name, "state": state})


def store_for(rt: JobRuntime, job_id: int) -> dict[str, Any]:
    return {"runtime_key": rt.key, "job_id": job_id}


def logbook_for(rt: JobRuntime, job_id: int) -> tuple[Any, Any]:
    """The job's logbook and flow detail, created (with the factory to rebuild the flow)
    the first time."""
    backend = rt.taskflow_backend()
    with contextlib.closing(backend.get_connection()) as connection:
        try:
            book = connection.get_logbook(book_uuid(job_id))
        except taskflow_errors.NotFound:
            book = taskflow_models.LogBook(f"job-{job_id}", uuid=book_uuid(job_id))
            flow_detail = taskflow_models.FlowDetail(f"job-{job_id}", uuid=str(uuid.uuid4()))
            book.add(flow_detail)
            engines.save_factory_details(flow_detail, build_flow, (),
                                         {"job_id": job_id, "runtime_key": rt.key})
            connection.save_logbook(book)
        flow_detail = next(iter(book))
    return book, flow_detail


def run_job(rt: JobRuntime, job_id: int) -> None:
    """Run (or resume) a job's flow in this thread."""
    rt.local_jobs.add(job_id)
    try:
        with rt.db.transaction(write=False) as session:
            forks = session.scalar(select(Job.forks).where(Job.id == job_id))
        if forks is None:
            return
        _, flow_detail = logbook_for(rt, job_id)
        # futurist's idle threads look for shutdown once a second: don't wait for them, or
        # each job would hold its slot a second after it ended.
        executor = futurist.ThreadPoolExecutor(max_workers=forks)
        try:
            engine = engines.load_from_detail(
                flow_detail, store=store_for(rt, job_id), backend=rt.taskflow_backend(),
                engine="parallel", executor=executor)
            with EventListener(engine, rt, job_id):
                engine.run()
        finally:
            executor.shutdown(wait=False)
    except Exception as error:
        LOG.exception("job %s stopped", job_id)
        _fail_unfinished(rt, job_id, error)
    finally:
        rt.local_jobs.discard(job_id)


def _fail_unfinished(rt: JobRuntime, job_id: int, error: Exception) -> None:
    """The flow's own revert records failures; this covers an engine that could not start."""
    with rt.db.transaction(write=False) as session:
        status = session.scalar(select(Job.status).where(Job.id == job_id))
    if status is not None and not JobStatus(status).finished:
        finish(rt, job_id, JobStatus.FAILED, f"the job could not run: {error}",
               unfinished="the job stopped before this host ran")


class EmbeddedEngine:
    """Runs jobs on a pool of threads in this process."""

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


class JobSystem:
    """One process's jobs: the runtime (events, services) and the engine that runs flows."""

    def __init__(self, settings: Any, db: Any, secrets: Any, fetcher: Any) -> None:
        from craton.jobs.runtime import register

        self.runtime = JobRuntime(settings, db, secrets, fetcher)
        register(self.runtime)
        # Loading TaskFlow's persistence plugin scans entry points (~0.7 s of CPU): at start,
        # not in a user's first request.
        self.runtime.taskflow_backend()
        self.engine: EmbeddedEngine | DistributedEngine
        if settings.jobs.engine == "distributed":
            from craton.jobs.distributed import DistributedEngine

            self.engine = DistributedEngine(self.runtime)
        else:
            self.engine = EmbeddedEngine(self.runtime)

    def forget(self, job_ids: list[int]) -> None:
        """Drop what TaskFlow and Redis still hold of deleted jobs."""
        backend = self.runtime.taskflow_backend()
        with contextlib.closing(backend.get_connection()) as connection:
            for job_id in job_ids:
                with contextlib.suppress(taskflow_errors.NotFound):
                    connection.destroy_logbook(book_uuid(job_id))
        if self.runtime.redis is not None:
            self.runtime.redis.delete(job_ids)

    def running_here(self, job_id: int) -> bool:
        return job_id in self.runtime.local_jobs

    def close(self) -> None:
        from craton.jobs.runtime import unregister

        self.engine.close()
        unregister(self.runtime)
        self.runtime.close()
