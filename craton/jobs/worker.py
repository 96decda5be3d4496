"""The worker side of the distributed engine: a conductor that claims jobs from the jobboard
(up to ``[jobs] concurrent_jobs`` at once), runs each job's flow, and keeps its claim alive
with a heartbeat meanwhile. ``craton-worker`` runs one.

Stopping (SIGTERM) suspends every running flow after its running task and hands the job back
to the board, where another worker resumes it. A worker that finds its claim taken over (it
stalled past the claim's expiry) suspends its run and leaves the job's state to the new
owner.
"""

from __future__ import annotations

import concurrent.futures
import logging
import os
import socket
import threading
from typing import Any

from sqlalchemy import select
from taskflow import engines, states
from taskflow import exceptions as taskflow_errors

from craton.db.models import Job, JobStatus
from craton.jobs.distributed import job_id_of
from craton.jobs.flow import JobEventListener, build_flow
from craton.jobs.results import fail_unfinished
from craton.jobs.runtime import JobRuntime
from craton.jobs.store import store_for
from craton.jobs.taskflow_adapter import ExpiringClaimsBoard, HookedConductor, Renewal
from craton.jobs.tasks import BUNDLE, PROJECT, FetchSource, Materialize

LOG = logging.getLogger(__name__)

POLL_SECONDS = 0.25
"""How often an idle worker looks for jobs to claim (posted or abandoned)."""


def worker_name() -> str:
    return f"craton-worker@{socket.gethostname()}:{os.getpid()}"


class Run:
    """One job a conductor is running."""

    def __init__(self, job_id: int) -> None:
        self.job_id = job_id
        self.engine: Any = None
        self.lost = threading.Event()
        """Another worker holds the job now: this run's state is not ours to record."""

    def suspend(self) -> None:
        """Stop after the running task."""
        if self.engine is not None:
            self.engine.suspend()


class Heartbeat(threading.Thread):
    """Renews a claim every third of its expiry while the job runs; when another worker took
    the job over (this process stalled past the expiry), suspends our run of it."""

    def __init__(self, board: ExpiringClaimsBoard, job: Any, who: str, run: Run) -> None:
        super().__init__(name=f"craton-heartbeat-{run.job_id}", daemon=True)
        self.board = board
        self.job = job
        self.who = who
        self.job_run = run
        self.interval = max(board.claim_expiry / 3.0, 0.2)
        self._stopped = threading.Event()

    def stop(self) -> None:
        self._stopped.set()
        self.join(5)

    def run(self) -> None:
        job_id = self.job_run.job_id
        while not self._stopped.wait(self.interval):
            try:
                renewal = self.board.renew(self.job, self.who)
            except taskflow_errors.JobFailure as error:
                LOG.warning("could not renew the claim on job %s: %s", job_id, error)
                continue
            if renewal is Renewal.RECLAIMED:
                LOG.warning("the claim on job %s had lapsed; claimed it again", job_id)
            elif renewal is Renewal.LOST:
                LOG.error("job %s was taken over by %s: stopping this run of it", job_id,
                          self.board.owner(self.job))
                self.job_run.lost.set()
                self.job_run.suspend()
                return
            elif renewal is Renewal.GONE:
                LOG.warning("job %s is no longer on the jobboard; running it to its end",
                            job_id)
                return


class Conductor(HookedConductor):
    """Claims jobs and runs each flow with the serial engine, keeping its claim alive."""

    def __init__(self, rt: JobRuntime, board: ExpiringClaimsBoard,
                 name: str | None = None) -> None:
        jobs = rt.settings.jobs.concurrent_jobs
        # concurrent.futures, not futurist: futurist's idle threads notice a shutdown only
        # once a second, which would delay every stop by that much.
        super().__init__(name or worker_name(), board, persistence=rt.taskflow_backend(),
                         engine="serial", wait_timeout=POLL_SECONDS,
                         max_simultaneous_jobs=jobs,
                         executor_factory=lambda: concurrent.futures.ThreadPoolExecutor(
                             max_workers=jobs, thread_name_prefix="craton-job"))
        self.rt = rt
        self.board = board
        self._local = threading.local()
        self._runs: dict[int, Run] = {}
        self._lost: set[str] = set()
        self._runs_lock = threading.Lock()

    @property
    def name(self) -> str:
        return self.worker_name

    def stop(self) -> None:
        """Claim nothing more; running jobs stop after their running task (suspended) and go
        back to the board, where other workers resume them."""
        super().stop()
        with self._runs_lock:
            runs = list(self._runs.values())
        for run in runs:
            run.suspend()

    def running(self) -> list[int]:
        with self._runs_lock:
            return sorted(self._runs)

    def dispatch(self, job: Any) -> bool:
        """Run one claimed job; True to consume it (done), False to abandon it (to be resumed
        by whichever worker claims it next)."""
        job_id = job_id_of(job)
        if job_id is None:
            LOG.error("jobboard entry %s is not a Craton job: dropping it", job)
            return True
        with self.rt.db.transaction(write=False) as session:
            status = session.scalar(select(Job.status).where(Job.id == job_id))
        if status is None or JobStatus(status).finished:
            return True  # deleted, or finished by a worker that died before consuming it
        run = Run(job_id)
        heartbeat = Heartbeat(self.board, job, self.worker_name, run)
        self.rt.local_jobs.add(job_id)
        with self._runs_lock:
            self._runs[job_id] = run
        heartbeat.start()
        error: Exception | None = None
        self._local.run = run
        try:
            consume = self.run_claimed(job)
        except Exception as failure:  # the flow could not even be loaded
            LOG.exception("job %s could not run", job_id)
            error, consume = failure, True
        finally:
            self._local.run = None
            heartbeat.stop()
            with self._runs_lock:
                self._runs.pop(job_id, None)
            self.rt.local_jobs.discard(job_id)
        if run.lost.is_set():
            with self._runs_lock:
                self._lost.add(job.uuid)
            return False  # the flow is another worker's now: leave its state alone
        if consume:
            fail_unfinished(self.rt, job_id, error or RuntimeError(_why_stopped(run.engine)))
        return consume

    def may_finish(self, job: Any) -> bool:
        """Not a job another worker holds now."""
        with self._runs_lock:
            if job.uuid in self._lost:
                self._lost.discard(job.uuid)
                return False
        return True

    def engine_for(self, job: Any) -> Any:
        """The job's flow, rebuilt in this process (the store names this worker's runtime, so
        the API and the workers need not spell the database URL alike)."""
        run: Run = self._local.run
        flow_detail = self.flow_detail_of(job)
        self._restore_work_dir(run.job_id, flow_detail)
        run.engine = engines.load(
            build_flow(run.job_id, self.rt.key), store=store_for(self.rt, run.job_id),
            flow_detail=flow_detail, book=job.book, backend=self.persistence, engine="serial")
        if self.stopping:
            run.suspend()  # stop() came before this run was known to it
        return run.engine

    def listeners_for(self, job: Any, engine: Any) -> list[Any]:
        return [JobEventListener(engine, self.rt, self._local.run.job_id)]

    def _restore_work_dir(self, job_id: int, flow_detail: Any) -> None:
        """A job taken over from a worker on another machine resumes after the steps that
        prepared its work directory there: prepare it here again."""
        done = {atom.name for atom in flow_detail if atom.state == states.SUCCESS}
        for step, kept in ((Materialize(), BUNDLE), (FetchSource(), PROJECT)):
            if step.name in done and not (self.rt.work_dir(job_id) / kept).is_dir():
                LOG.info("job %s: preparing %s again in this worker", job_id, kept)
                step.execute(runtime_key=self.rt.key, job_id=job_id)


def _why_stopped(engine: Any) -> str:
    """What the flow says about an end its own revert did not record."""
    if engine is None:
        return "its flow could not be loaded"
    try:
        failures = list(engine.storage.get_execute_failures().values()) + \
            list(engine.storage.get_revert_failures().values())
        state = engine.storage.get_flow_state()
    except Exception:  # storage unavailable: say what we know
        return "its flow stopped unexpectedly"
    texts = "; ".join(f"{f.exception_str}" for f in failures)
    return f"its flow ended {state}" + (f": {texts}" if texts else "")
